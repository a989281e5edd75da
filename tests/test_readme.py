"""README's blocks as a newcomer copies them: run against ``livecart demo`` started the way the
README starts it, using only what ``pip install -e .`` (no test extras) installs."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_cli import livecart

# No storage mark: livecart runs here unconfigured (its own Valkey and SQLite file) whatever
# REDIS_URL and DATABASE_URL say, so CI's storage step would only repeat it.

README = Path(__file__).resolve().parent.parent / "README.md"
README_SERVER = "127.0.0.1:8000"  # the address the README's blocks use: the demo's default


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in this language, in order."""
    fence = re.compile(rf"^```{language}\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    return fence.findall(README.read_text())


def for_server(block: str, base_url: str) -> str:
    assert README_SERVER in block, "the block no longer talks to the demo's default address"
    return block.replace(README_SERVER, base_url.removeprefix("http://"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with livecart("demo", tmp_path_factory.mktemp("readme")) as base_url:
        yield base_url


def test_the_python_snippet_needs_only_a_plain_install() -> None:
    (snippet,) = blocks("python")
    plain = plain_install()
    by_module = metadata.packages_distributions()
    for module in imported_modules(snippet):
        if module in sys.stdlib_module_names:
            continue
        owners = {canonicalize_name(d) for d in by_module.get(module, [])}
        assert owners & plain, f"README's snippet imports {module}, which `pip install -e .` lacks"


def test_the_python_snippet_watches_the_demo_room(demo: str, tmp_path: Path) -> None:
    (snippet,) = blocks("python")
    script = tmp_path / "watch.py"
    script.write_text(for_server(snippet, demo))
    watched = subprocess.run(
        [sys.executable, str(script), "2"],  # README: `.venv/bin/python watch.py 10`, shorter
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert watched.returncode == 0, watched.stderr
    welcome, snapshot = watched.stdout.splitlines()[:2]
    assert re.fullmatch(r"welcome \d+", welcome), watched.stdout
    assert snapshot == welcome.replace("welcome", "snapshot")  # the snapshot covers welcome.seq


def test_the_curl_lines_reserve_pay_and_list_the_order(demo: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (block,) = [b for b in blocks("sh") if b.startswith(f"B=http://{README_SERVER}\n")]
    # One more line prints the block's guest token, to look for its order afterwards.
    script = for_server(block, demo) + '\necho "{\\"token\\": \\"$T\\"}"\n'
    ran = subprocess.run(
        ["bash", "-e", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    deals, reserved, paid, orders, guest = json_documents(ran.stdout)
    assert {"id": 1, "status": "live"}.items() <= deals["deals"][0].items()  # README: deal 1
    # The answers the README's comments show (201 bodies: a refusal would be {"error": ...}).
    hold = reserved["hold"]["id"]
    assert re.fullmatch(r"1-[0-9]{16}", hold), hold  # as the README's example id
    assert reserved["hold"] == {**reserved["hold"], "qty": 1, "state": "held"}
    assert paid["order"] == {**paid["order"], "hold_id": hold, "status": "paid", "amount": 4900}
    # "the order, once the pipeline wrote it": the last line may have come before that.
    assert [o["hold_id"] for o in orders["orders"]] in ([], [hold])
    auth = {"Authorization": f"Bearer {guest['token']}"}
    deadline = time.monotonic() + 30
    while not (found := httpx.get(f"{demo}/api/orders", headers=auth).json()["orders"]):
        assert time.monotonic() < deadline, "the pipeline never wrote the README's order"
        time.sleep(0.1)
    assert [(o["hold_id"], o["status"]) for o in found] == [(hold, "paid")]


def json_documents(text: str) -> list[Any]:
    """curl prints each body with no newline after it: split the JSON documents apart."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while at < len(text.rstrip()):
        document, at = decoder.raw_decode(text, at)
        found.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


def plain_install() -> set[str]:
    """The distributions `pip install -e .` brings: livecart's requirements without its extras,
    and theirs, with the extras each asks for (uvicorn[standard] brings websockets)."""
    found: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [("livecart", frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in metadata.requires(name) or []:
            wanted = Requirement(line)
            if wanted.marker and not any(
                wanted.marker.evaluate({"extra": extra}) for extra in extras | {""}
            ):
                continue
            found.add(canonicalize_name(wanted.name))
            todo.append((canonicalize_name(wanted.name), frozenset(wanted.extras)))
    return found
