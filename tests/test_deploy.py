"""The deployment files in deploy/ say what the code does: HAProxy accepts the configuration,
it checks the readiness path livecart serves and routes the media paths livecart answers, the
Dockerfile copies every package the project installs, and the units start commands that exist.
(Containers cannot run on livecart's machines: docs/operations.md says so.)"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from starlette.routing import WebSocketRoute

from tests.source import ROOT
from web.app import create_app
from web.cli import SERVING, parser
from web.route_index import RouteIndex
from web.settings import Settings

DEPLOY = ROOT / "deploy"


def haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if found is None:
        if os.environ.get("LIVECART_REQUIRE_HAPROXY"):
            pytest.fail("haproxy is required here (apt-get install haproxy)")
        pytest.skip("Debian's haproxy is not installed")
    return found


def test_haproxy_accepts_the_configuration() -> None:
    checked = subprocess.run(
        [haproxy(), "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_realtime_nodes_option_is_a_valid_configuration(tmp_path: Path) -> None:
    """The commented routing of websockets to nodes of their own (decision 0052), switched
    on, is accepted by HAProxy and sends it every websocket path livecart serves."""
    config = (DEPLOY / "haproxy.cfg").read_text()
    assert config.count("#realtime ") >= 5
    switched_on = tmp_path / "haproxy.cfg"
    switched_on.write_text(config.replace("#realtime ", ""))
    checked = subprocess.run(
        [haproxy(), "-c", "-f", str(switched_on)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    realtime = re.search(r"acl realtime path_beg (\S+)$", switched_on.read_text(), re.MULTILINE)
    assert realtime is not None
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LIVECART_SECRET_KEY", secrets.token_urlsafe(32))
        app = create_app(Settings())
    (index,) = app.router.routes
    assert isinstance(index, RouteIndex)
    sockets = [route.path for route in index.routes if isinstance(route, WebSocketRoute)]
    assert sockets
    assert all(path.startswith(realtime.group(1)) for path in sockets), sockets


def test_the_load_balancer_checks_and_routes_paths_livecart_serves() -> None:
    config = (DEPLOY / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in config
    media = re.search(r"acl media path_beg (.+)", config)
    assert media is not None
    assert media.group(1).split() == ["/whip/", "/whep/"]
    from web.app import APIS  # the routes the server answers

    paths = {route.path for api in APIS for route in api.routes()}  # type: ignore[attr-defined]
    assert "/readyz" in paths
    assert {"/whip/{room_id:id}", "/whep/{room_id:id}"} <= paths


def test_the_dockerfile_copies_every_installed_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    assert copied == packages


def test_the_units_run_commands_livecart_has() -> None:
    known = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert set(SERVING) <= known
    for unit in ("livecart.service", "livecart-worker@.service"):
        text = (DEPLOY / unit).read_text()
        (start,) = re.findall(r"^ExecStart=/opt/livecart/bin/livecart (.+)$", text, re.MULTILINE)
        command, *options = start.split()
        assert command in known, unit
        parser().parse_args([command, *options])  # the options exist
