"""Dependencies point one way: web → live → checkout → catalog → people → kernel (ARCHITECTURE.md,
decision 0026). A module may import its own package and the layers below it, never above."""

from __future__ import annotations

import ast

from tests.source import PACKAGES, name_of, production_files

# Each package, and the packages below it that it may import.
BELOW = {package: set(PACKAGES[: n + 1]) for n, package in enumerate(PACKAGES)}


def imported_packages(source: str) -> set[str]:
    """The top-level livecart packages a module imports, at any depth (function-local too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def upward_imports() -> list[str]:
    return [
        f"{name_of(path)} imports {above}"
        for path in production_files()
        for above in sorted(
            imported_packages(path.read_text()) - BELOW[name_of(path).split("/")[0]]
        )
    ]


def test_the_layers_are_ordered_from_the_kernel_up() -> None:
    assert PACKAGES == ("kernel", "people", "catalog", "checkout", "live", "web")


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports() == []


def test_an_upward_import_is_found() -> None:
    assert imported_packages("from live.store import RoomStore\nimport web.app") == {"live", "web"}
    assert imported_packages("def f():\n    from checkout import deals\n") == {"checkout"}
    assert imported_packages("from . import rules\nimport os") == set()
