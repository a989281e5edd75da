"""The commands a person types: ``livecart demo`` with no configuration (embedded Valkey and
SQLite), a restart that keeps holds, and ``livecart create-seller``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from tests.harness import free_port, serve

# No storage mark: livecart runs here unconfigured (its own Valkey and SQLite file) whatever
# REDIS_URL and DATABASE_URL say, so CI's storage step would only repeat it.

UNCONFIGURED = {
    k: v
    for k, v in os.environ.items()
    if k not in {"REDIS_URL", "DATABASE_URL", "LIVECART_REDIS_PREFIX", "LIVECART_DATA_DIR"}
}


@contextmanager
def livecart(command: str, workdir: Path) -> Iterator[str]:
    """Run a command the way README's first command does: in a directory, with nothing set, so
    the data lands in the default ``./.livecart``."""
    port = free_port()
    log = workdir / f"{command}-{port}.log"
    running = serve(
        [sys.executable, "-m", "web.cli", command, "--port", str(port)],
        port=port,
        env=UNCONFIGURED,
        log=log,
        cwd=workdir,
    )
    try:
        yield running.base_url
    finally:
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=20) == 0, log.read_text()


def test_sigterm_stops_the_private_valkey_too(tmp_path: Path) -> None:
    """systemd, docker and kill stop a server with SIGTERM: its private Valkey goes with it."""
    data = tmp_path / ".livecart"
    port = free_port()
    process = serve(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
        port=port,
        env=UNCONFIGURED,
        log=tmp_path / "serve.log",
        cwd=tmp_path,
    ).process
    assert valkey_running(data)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not valkey_running(data)


def valkey_running(data_dir: Path) -> bool:
    """Is the private Valkey of this data dir answering on the port its log names?"""
    ports = re.findall(r"port=(\d+)", (data_dir / "valkey" / "valkey.log").read_text())
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(ports[-1]))) == 0


def test_demo_runs_with_no_configuration_and_keeps_holds_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / ".livecart"
    with livecart("demo", tmp_path) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        deals = httpx.get(f"{base}/api/deals").json()["deals"]
        # Both demo deals are started (units allocated); only the jacket's window is open.
        live = [d for d in deals if d["status"] == "live" and d["phase"] == "open"]
        assert len(live) == 1 and live[0]["stock"]["available"] == live[0]["quantity"]
        session = httpx.post(f"{base}/api/session").json()
        auth = {"Authorization": f"Bearer {session['token']}"}
        hold = httpx.post(
            f"{base}/api/deals/{live[0]['id']}/reserve", json={"qty": 1}, headers=auth
        ).json()["hold"]
        rooms = httpx.get(f"{base}/api/rooms", params={"status": "live"}).json()["rooms"]
        assert len(rooms) == 1
        room = rooms[0]["id"]
        with connect(base.replace("http://", "ws://") + f"/ws/rooms/{room}") as ws:
            ws.send(json.dumps({"type": "hello", "token": session["token"]}))
            welcome, snapshot, *_ = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome" and snapshot["type"] == "snapshot"
        assert snapshot["room"]["status"] == "live"
        assert len(snapshot["room"]["bag"]) == 2 and snapshot["room"]["pinned"] is not None
        # The pages of the demo (the browser tests drive them; here: they are there).
        page = httpx.get(f"{base}/live/{room}")
        assert page.status_code == 200 and "Friday night drop" in page.text
        shop = httpx.get(f"{base}/shop/mikas-live-closet")
        assert shop.status_code == 200 and f'href="/live/{room}"' in shop.text
        for bag_item in snapshot["room"]["bag"]:  # the demo's pictures are served
            assert httpx.get(f"{base}{bag_item['image']}").status_code == 200
        assert httpx.get(f"{base}/studio/{room}").status_code == 303  # sign in first
        assert valkey_running(data)
    assert not valkey_running(data)  # the private Valkey stops with the server
    assert (data / "livecart.db").exists()
    assert any((data / "valkey" / "appendonlydir").iterdir())  # append-only file on

    with livecart("serve", tmp_path) as base:
        kept = httpx.get(f"{base}/api/holds/{hold['id']}", headers=auth)
        assert kept.json()["hold"] == {**hold, "state": "held"}
        assert httpx.get(f"{base}/api/deals/{live[0]['id']}").json()["deal"]["stock"]["held"] == 1
        kept_room = httpx.get(f"{base}/api/rooms/{room}").json()
        assert kept_room["room"]["pinned"] == snapshot["room"]["pinned"]
        assert kept_room["seq"] == welcome["seq"]


def test_create_seller_prints_a_working_token(tmp_path: Path) -> None:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "web.cli",
            "create-seller",
            "--name",
            "Ana",
            "--email",
            "ana@example.com",
        ],
        env=UNCONFIGURED,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.split("token: ")[1].splitlines()[0].strip()
    link = created.stdout.split("owner's sign-up link (7 days): ")[1].strip()
    with livecart("serve", tmp_path) as base:
        shops = httpx.get(f"{base}/api/shops", headers={"Authorization": f"Bearer {token}"})
        assert shops.json() == {"shops": [{"id": 1, "name": "Ana's shop", "handle": "anas-shop"}]}
        # The owner's link: they choose a password and are signed in as the owner.
        with httpx.Client(base_url=base) as browser:
            page = browser.get(urlsplit(link).path)
            assert page.status_code == 200 and "ana@example.com" in page.text
            (csrf,) = re.findall(r'name="csrf" value="([^"]+)"', page.text)
            joined = browser.post(
                urlsplit(link).path, data={"csrf": csrf, "password": "violet-kettle-orbit-42"}
            )
            assert joined.status_code == 303, joined.text
            me = browser.get("/api/staff/me")
            assert me.json()["role"] == "owner" and me.json()["seller_id"] == 1
    again = subprocess.run(
        created.args, env=UNCONFIGURED, cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip().splitlines() == [  # one line, no traceback
        "livecart create-seller: A seller with this email already exists. (seller_exists)"
    ]


def test_the_demo_prints_a_publish_line_that_works_as_typed(tmp_path: Path) -> None:
    """README runs ``.venv/bin/livecart demo`` in the clone, where ``livecart`` alone is not on
    the PATH: the video line it prints must run as typed from there."""
    script = Path(sys.executable).parent / "livecart"
    if not script.is_file():
        pytest.skip("livecart is not installed beside this Python (pip install -e .)")
    (tmp_path / ".venv").symlink_to(script.parent.parent)  # the clone's .venv, as README made it
    port = free_port()
    log = tmp_path / "demo.log"
    process = serve(
        [".venv/bin/livecart", "demo", "--port", str(port)],
        port=port,
        env=UNCONFIGURED,
        log=log,
        cwd=tmp_path,
    ).process
    try:
        banner = log.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log.read_text()
    (line,) = re.findall(r"^  video: +(.+)$", banner, re.MULTILINE)
    token = re.findall(r"^  seller token: +(\S+)$", banner, re.MULTILINE)[0]
    assert line == f".venv/bin/livecart publish 1 --url http://127.0.0.1:{port} --token {token}"
    typed = subprocess.run(  # as typed, plus -h: it runs, without going live
        ["bash", "-c", f"{line} -h"], env=UNCONFIGURED, cwd=tmp_path, capture_output=True, text=True
    )
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout.startswith("usage: livecart publish")
