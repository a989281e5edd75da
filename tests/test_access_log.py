"""The access log against real ``livecart serve`` processes: one line per request (plain text by
default, JSON lines when asked, none when off), a request id in every response's X-Request-ID
(the caller's when it is sane), and a 500 whose body, header and log line name the same id."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.conftest import start_server
from tests.harness import Server, stop_server

pytestmark = pytest.mark.storage

GENERATED_ID = re.compile(r"[0-9a-f]{16}")
WAIT_S = 10.0


def serve(tmp: Path, redis_url: str, database_url: str, **env: str) -> Server:
    # Bench routes: GET /api/fault/500 is the only way to make this server fail on purpose.
    return start_server(
        redis_url, database_url, tmp / "server.log", LIVECART_BENCH_ROUTES="1", **env
    )


@pytest.fixture(scope="module")
def text_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve(tmp_path_factory.mktemp("access-text"), redis_url, database_url)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def json_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve(
        tmp_path_factory.mktemp("access-json"), redis_url, database_url, LIVECART_LOG_FORMAT="json"
    )
    yield running
    stop_server(running)


def log_lines(server: Server) -> list[str]:
    return server.log.read_text(errors="replace").splitlines()


def wait_for(server: Server, found: Callable[[list[str]], bool]) -> list[str]:
    """The server's log once ``found`` holds for it (lines land just after each response)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        lines = log_lines(server)
        if found(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def access_records(lines: list[str]) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r["logger"] == "livecart.access"]


def fresh_id(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(6)}"


# ---------------------------------------------------------------------------------------------
# one line per request


def test_every_request_gets_exactly_one_line(text_server: Server) -> None:
    ids = [fresh_id("count") for _ in range(30)]
    paths = ["/healthz", "/api/deals", "/no/such/page?q=1"]
    with httpx.Client(base_url=text_server.base_url) as client:
        for i, rid in enumerate(ids):
            client.get(paths[i % len(paths)], headers={"X-Request-ID": rid})

    lines = wait_for(text_server, lambda ls: all(any(rid in x for x in ls) for rid in ids))

    for i, rid in enumerate(ids):
        mine = [line for line in lines if line.endswith(f" id={rid}")]
        assert len(mine) == 1, (rid, mine)
        assert "INFO livecart.access 127.0.0.1:" in mine[0]
        status = 404 if i % len(paths) == 2 else 200
        assert f" GET {paths[i % len(paths)]} {status} " in mine[0], mine[0]
        assert re.search(r" \d+\.\dms id=", mine[0]), mine[0]


def test_json_lines_parse_and_carry_the_fields(json_server: Server) -> None:
    ids = [fresh_id("json") for _ in range(10)]
    with httpx.Client(base_url=json_server.base_url) as client:
        for rid in ids:
            client.post("/api/noop", content=b"{}", headers={"X-Request-ID": rid})

    def all_logged(lines: list[str]) -> bool:
        return {r["request_id"] for r in access_records(lines)} >= set(ids)

    lines = wait_for(json_server, all_logged)

    # Everything on stderr is one JSON object a line; the startup banner is stdout's.
    records = [json.loads(line) for line in lines if not line.startswith("livecart serving")]
    mine = [r for r in access_records(lines) if r["request_id"] in ids]
    assert len(mine) == len(ids)
    for record in mine:
        assert record["method"] == "POST" and record["path"] == "/api/noop"
        assert record["status"] == 200
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
        assert record["client"].startswith("127.0.0.1:")
        assert record["level"] == "INFO" and record["ts"]
    assert len(records) >= len(ids)


def test_no_access_lines_when_turned_off(redis_url: str, database_url: str, tmp_path: Path) -> None:
    server = serve(tmp_path, redis_url, database_url, LIVECART_ACCESS_LOG="0")
    try:
        with httpx.Client(base_url=server.base_url) as client:
            quiet = client.get("/healthz")
            failed = client.get("/api/fault/500")
    finally:
        stop_server(server)  # after it has stopped, every line it wrote is in the file

    assert GENERATED_ID.fullmatch(quiet.headers["x-request-id"])
    assert failed.json()["error"]["request_id"] == failed.headers["x-request-id"]
    assert not [line for line in log_lines(server) if "livecart.access" in line]
    assert any(f"(request {failed.headers['x-request-id']})" in x for x in log_lines(server))


# ---------------------------------------------------------------------------------------------
# the request id


def test_a_500_names_the_id_its_log_line_has(json_server: Server) -> None:
    with httpx.Client(base_url=json_server.base_url) as client:
        response = client.get("/api/fault/500")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    rid = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(rid)
    assert error["request_id"] == rid

    def both_logged(lines: list[str]) -> bool:
        records: list[dict[str, Any]] = [json.loads(x) for x in lines if x.startswith("{")]
        return sum(1 for r in records if r.get("request_id") == rid) >= 2

    lines = wait_for(json_server, both_logged)

    records = [json.loads(line) for line in lines if line.startswith("{")]
    [access] = [r for r in access_records(lines) if r["request_id"] == rid]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/fault/500", 500)
    [crash] = [r for r in records if r["logger"] == "livecart.http" and r.get("request_id") == rid]
    assert crash["level"] == "ERROR"
    assert "RuntimeError: fault injected" in crash["exc"]


def test_a_500_in_plain_text_names_the_id_too(text_server: Server) -> None:
    with httpx.Client(base_url=text_server.base_url) as client:
        response = client.get("/api/fault/500")
        # Whatever the failed request logs, it logs in one step of the server's loop, which
        # ends before this next request is served: once its line is there, they all are.
        after = fresh_id("after-fault")
        client.get("/healthz", headers={"X-Request-ID": after})
    rid = response.headers["x-request-id"]
    assert response.json()["error"]["request_id"] == rid

    lines = wait_for(text_server, lambda ls: any(x.endswith(f" id={after}") for x in ls))

    [access] = [x for x in lines if x.endswith(f" id={rid}")]
    assert " GET /api/fault/500 500 " in access, access
    crash = f"ERROR livecart.http unhandled error on GET /api/fault/500 (request {rid})"
    assert sum(crash in x for x in lines) == 1
    # One traceback, the one with the id: not again from uvicorn.
    assert sum(x.startswith("RuntimeError: fault injected") for x in lines) == 1


def test_every_error_body_carries_the_id(text_server: Server) -> None:
    with httpx.Client(base_url=text_server.base_url) as client:
        not_found = client.get("/api/nothing-here")
        wrong_method = client.get("/api/session")
        refused = client.post("/api/deals/1/reserve", json={"qty": 1})  # no bearer token
    for response, status in ((not_found, 404), (wrong_method, 405), (refused, 401)):
        assert response.status_code == status, response.text
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_a_sane_incoming_id_is_kept(text_server: Server) -> None:
    sent = "edge-proxy.7f3a:01_AB-" + secrets.token_hex(4)
    with httpx.Client(base_url=text_server.base_url) as client:
        response = client.get("/api/nothing-here", headers={"X-Request-ID": sent})
    assert response.headers["x-request-id"] == sent
    assert response.json()["error"]["request_id"] == sent
    lines = wait_for(text_server, lambda ls: any(x.endswith(f" id={sent}") for x in ls))
    assert sum(x.endswith(f" id={sent}") for x in lines) == 1


@pytest.mark.parametrize(
    "sent",
    [b"x" * 65, b"two words", b'line\\nbreak"quote', b"\xff\xfe", b""],
    ids=["too-long", "space", "quote", "not-ascii", "empty"],
)
def test_an_insane_incoming_id_is_replaced(text_server: Server, sent: bytes) -> None:
    with httpx.Client(base_url=text_server.base_url) as client:
        response = client.get("/api/nothing-here", headers=[(b"X-Request-ID", sent)])
    rid = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(rid), rid
    assert response.json()["error"]["request_id"] == rid


# ---------------------------------------------------------------------------------------------
# websockets: one line when the connection ends


def test_a_websocket_gets_one_line_when_it_ends(text_server: Server) -> None:
    url = text_server.base_url.replace("http://", "ws://") + "/ws/rooms/1"
    with connect(url) as ws:
        assert ws.response is not None
        rid = ws.response.headers["X-Request-ID"]
        assert GENERATED_ID.fullmatch(rid)
    lines = wait_for(text_server, lambda ls: any(x.endswith(f" id={rid}") for x in ls))
    [line] = [x for x in lines if x.endswith(f" id={rid}")]
    assert " WS /ws/rooms/1 close=1000 " in line, line


def test_a_refused_handshake_is_logged_with_its_code(text_server: Server) -> None:
    rid = fresh_id("ws")
    url = text_server.base_url.replace("http://", "ws://") + "/ws/rooms/1"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            url, origin=Origin("https://evil.example"), additional_headers={"X-Request-ID": rid}
        )
    assert refused.value.response.status_code == 403
    lines = wait_for(text_server, lambda ls: any(x.endswith(f" id={rid}") for x in ls))
    [line] = [x for x in lines if x.endswith(f" id={rid}")]
    assert " WS /ws/rooms/1 close=1008 " in line, line
