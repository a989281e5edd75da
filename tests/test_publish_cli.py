"""``livecart publish`` when it cannot go live: the server refuses the offer, or nothing answers.
It says why in one sentence on stderr, prints no "publishing", and exits with status 1. (Going
live is tests/test_media.py's.)"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import SellerAccount
from tests.harness import Server, free_port
from tests.helpers import http_room

pytestmark = pytest.mark.storage

NO_TOKEN_ENV = {k: v for k, v in os.environ.items() if k != "LIVECART_TOKEN"}


@dataclass
class Ran:
    status: int
    stdout: str
    stderr: str


async def publish(*args: str) -> Ran:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "web.cli", "publish", *args, "--seconds", "5"],
        env=NO_TOKEN_ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


async def test_a_room_that_is_not_yours_is_refused_in_a_sentence(
    server: Server, seller: SellerAccount
) -> None:
    ran = await publish("999999999", "--url", server.base_url, "--token", seller.token)
    assert ran.status == 1
    assert ran.stderr.splitlines() == [
        "livecart publish: the server refused: No such room. (room_not_found, HTTP 404)"
    ]
    assert "publishing" not in ran.stdout


async def test_a_wrong_token_is_refused_in_a_sentence(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    room, _, _ = await http_room(http, seller)
    ran = await publish(str(room), "--url", server.base_url, "--token", "lc_sk_not-a-token")
    assert ran.status == 1
    assert ran.stderr.splitlines() == [
        "livecart publish: the server refused: Unknown seller token. (invalid_token, HTTP 401)"
    ]
    assert "publishing" not in ran.stdout


async def test_no_server_there_is_said_in_a_sentence() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens on it
    ran = await publish("1", "--url", url, "--token", "lc_sk_anything")
    assert ran.status == 1
    assert ran.stderr.splitlines() == [
        f"livecart publish: no livecart answers at {url} (Connection refused); "
        "is it running, and is --url its address?"
    ]
    assert "publishing" not in ran.stdout


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--fps", "0", "argument --fps: frames per second go from 1 to 60, not 0"),
        ("--fps", "61", "argument --fps: frames per second go from 1 to 60, not 61"),
        ("--size", "640x", "argument --size: WIDTHxHEIGHT, like 640x360, not '640x'"),
        ("--url", "127.0.0.1:8000", "argument --url: a URL like http://127.0.0.1:8000, not"),
    ],
)
async def test_bad_arguments_are_refused_before_connecting(
    flag: str, value: str, says: str
) -> None:
    ran = await publish("1", "--token", "lc_sk_anything", flag, value)
    assert ran.status == 2  # argparse's status for a usage error
    assert says in ran.stderr.splitlines()[-1]
    assert "publishing" not in ran.stdout
