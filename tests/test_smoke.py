import pytest

from tests.conftest import Server

pytestmark = pytest.mark.storage


async def test_healthz(http, server: Server) -> None:
    r = await http.get("/healthz")
    assert r.json() == {"status": "ok"}
