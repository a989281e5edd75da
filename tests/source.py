"""livecart's own source tree, for the tests that read it (vocabulary, error codes, stores,
settings): one list of the production packages, so a new package is checked by all of them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernel", "people", "catalog", "checkout", "live", "web")


def production_files() -> list[Path]:
    """Every Python module of the production packages, in a stable order."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def name_of(path: Path) -> str:
    """``path`` as the tests name it: relative to the checkout, with forward slashes."""
    return path.relative_to(ROOT).as_posix()
