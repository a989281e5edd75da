"""Reserving over HTTP: bad input gets a 4xx with a code and leaves the deal's stock untouched;
a good reservation holds stock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import Headers, Listing, assert_error, deal_stock, reserve

pytestmark = pytest.mark.storage

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        pytest.param({"json": {"qty": 0}}, 422, "invalid_request", id="qty-0"),
        pytest.param({"json": {"qty": -1}}, 422, "invalid_request", id="qty-negative"),
        pytest.param({"json": {"qty": 1.5}}, 422, "invalid_request", id="qty-fraction"),
        pytest.param({"json": {"qty": "1"}}, 422, "invalid_request", id="qty-string"),
        pytest.param({"json": {"qty": True}}, 422, "invalid_request", id="qty-bool"),
        pytest.param({"json": {"qty": None}}, 422, "invalid_request", id="qty-null"),
        pytest.param({"json": {"qty": 10**30}}, 422, "invalid_request", id="qty-huge"),
        pytest.param({"json": {"qty": 1001}}, 422, "invalid_request", id="qty-over-max"),
        pytest.param({"json": [1]}, 422, "invalid_request", id="array-body"),
        pytest.param({"json": {"request_id": "a b"}}, 422, "invalid_request", id="bad-request-id"),
        pytest.param({"json": {"qty": 1, "price": 1}}, 422, "unknown_field", id="client-price"),
        pytest.param({"headers": JSON, "content": b""}, 400, "malformed_json", id="empty-body"),
        pytest.param({}, 415, "unsupported_media_type", id="no-body-no-type"),
        pytest.param(
            {"headers": JSON, "content": b'{"qty": '}, 400, "malformed_json", id="malformed"
        ),
        pytest.param(
            {"headers": JSON, "content": b"\xff\xfe"}, 400, "malformed_json", id="not-utf8"
        ),
        pytest.param(
            {"headers": {"content-type": "text/plain"}, "content": b'{"qty": 1}'},
            415,
            "unsupported_media_type",
            id="text-plain",
        ),
        pytest.param(
            {"json": {"qty": 1, "pad": "x" * 65_536}}, 413, "body_too_large", id="over-64KiB"
        ),
    ],
)
async def test_bad_reserve_is_refused_and_stock_is_unchanged(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    request_kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    kwargs = dict(request_kwargs)
    headers = {**buyer, **kwargs.pop("headers", {})}
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=headers, **kwargs)
    assert_error(r, status, code)
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_oversized_chunked_reserve_is_413(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
) -> None:
    """No Content-Length to check up front: the limit still holds for a streamed body."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"qty": 1, "pad": "'
        for _ in range(10):
            yield b"x" * 8192
        yield b'"}'

    r = await http.post(
        f"/api/deals/{live.deal_id}/reserve", headers={**buyer, **JSON}, content=chunks()
    )
    assert_error(r, 413, "body_too_large")
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(None, "missing_token", id="no-token"),
        pytest.param("Bearer lc_gs_forged.token.sig", "invalid_token", id="forged"),
        pytest.param("Bearer garbage", "invalid_token", id="garbage"),
        pytest.param("Bearer lc_sk_seller", "invalid_token", id="seller-token"),
        pytest.param("Bearer", "missing_token", id="empty-bearer"),
    ],
)
async def test_reserve_without_a_valid_session_is_401(
    http: httpx.AsyncClient, live: Listing, authorization: str | None, code: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=headers, json={"qty": 1})
    assert_error(r, 401, code)
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_reserve_on_a_huge_deal_id_is_404(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
) -> None:
    for huge in ("9" * 40, "9" * 15, str(2**31)):
        r = await http.post(f"/api/deals/{huge}/reserve", headers=buyer, json={"qty": 1})
        assert_error(r, 404, "not_found")
        assert_error(await http.get(f"/api/deals/{huge}"), 404, "not_found")
        assert_error(await http.get(f"/api/products/{huge}"), 404, "not_found")
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_good_reserve_holds_stock(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
) -> None:
    """The baseline the refusals above are measured against."""
    hold = await reserve(http, live.deal_id, buyer, qty=3)
    assert (hold["qty"], hold["state"]) == (3, "held")
    assert hold["id"].startswith(f"{live.deal_id}-")
    assert await deal_stock(http, live.deal_id) == {"available": 7, "held": 3, "sold": 0}
