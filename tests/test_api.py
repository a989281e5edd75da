"""HTTP tests against a real ``livecart serve``: catalog CRUD and ownership, deal rules, bad input
on reserve, idempotent checkout against the sandbox ledger, orders moving through their states,
and the ops endpoints. Every refusal is also checked to have changed nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis

from catalog.clock import now_ms
from catalog.db import Database
from checkout.keys import Keyspace
from checkout.payments import Charge, ChargeStatus, SandboxProvider
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import make_seller
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_NO_FUNDS = "4000000000009995"
LIST_PRICE = 9900
DEAL_PRICE = 4900
JSON = {"content-type": "application/json"}
UNUSED_ID = 2_000_000_000  # fits the SQL INTEGER ids, and no test makes that many rows

Headers = dict[str, str]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Helpers


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns the error."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


@dataclass(frozen=True)
class Listing:
    """A product with one SKU and a deal on it, all made over HTTP."""

    shop_id: int
    product_id: int
    sku_id: int
    deal_id: int


async def new_product(http: httpx.AsyncClient, seller: SellerAccount) -> dict[str, Any]:
    r = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=seller.headers, json={"title": "Jacket"}
    )
    assert r.status_code == 201, r.text
    product: dict[str, Any] = r.json()["product"]
    return product


async def new_sku(
    http: httpx.AsyncClient, seller: SellerAccount, product_id: int, *, stock: int = 10
) -> dict[str, Any]:
    r = await http.post(
        f"/api/products/{product_id}/skus",
        headers=seller.headers,
        json={"variant": "M", "list_price": LIST_PRICE, "currency": "USD", "stock": stock},
    )
    assert r.status_code == 201, r.text
    sku: dict[str, Any] = r.json()["sku"]
    return sku


def deal_body(sku_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "sku_id": sku_id,
        "deal_price": DEAL_PRICE,
        "quantity": 5,
        "per_buyer_limit": 5,
        "duration_s": 3600,
    }
    return {**body, **overrides}


async def make_listing(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    *,
    quantity: int = 10,
    start: bool = True,
    starts_ms: int | None = None,
) -> Listing:
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=quantity)
    body = deal_body(sku["id"], quantity=quantity, starts_ms=starts_ms)
    if starts_ms is None:
        del body["starts_ms"]
    r = await http.post("/api/deals", headers=seller.headers, json=body)
    assert r.status_code == 201, r.text
    deal_id = r.json()["deal"]["id"]
    if start:
        started = await http.post(f"/api/deals/{deal_id}/start", headers=seller.headers)
        assert started.status_code == 200, started.text
    return Listing(seller.shop.id or 0, product["id"], sku["id"], deal_id)


async def get_deal(http: httpx.AsyncClient, deal_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/deals/{deal_id}")
    assert r.status_code == 200, r.text
    deal: dict[str, Any] = r.json()["deal"]
    deal.pop("server_ms", None)  # the only field that changes by itself
    return deal


async def deal_stock(http: httpx.AsyncClient, deal_id: int) -> dict[str, int]:
    stock: dict[str, int] = (await get_deal(http, deal_id))["stock"]
    return stock


async def get_product(http: httpx.AsyncClient, product_id: int) -> dict[str, Any]:
    r = await http.get(f"/api/products/{product_id}")
    assert r.status_code == 200, r.text
    product: dict[str, Any] = r.json()["product"]
    return product


async def sku_stock(http: httpx.AsyncClient, item: Listing) -> int:
    (sku,) = [
        s for s in (await get_product(http, item.product_id))["skus"] if s["id"] == item.sku_id
    ]
    stock: int = sku["stock"]
    return stock


async def shop_products(http: httpx.AsyncClient, shop_id: int) -> list[dict[str, Any]]:
    r = await http.get("/api/products", params={"shop_id": shop_id})
    assert r.status_code == 200, r.text
    products: list[dict[str, Any]] = r.json()["products"]
    return products


async def deals_of_sku(http: httpx.AsyncClient, sku_id: int) -> list[dict[str, Any]]:
    r = await http.get("/api/deals")
    assert r.status_code == 200, r.text
    return [d for d in r.json()["deals"] if d["sku_id"] == sku_id]


async def catalog_state(http: httpx.AsyncClient, item: Listing) -> dict[str, Any]:
    """Everything a refused request could have changed about a listing, read over HTTP."""
    return {
        "product": await get_product(http, item.product_id),
        "deal": await get_deal(http, item.deal_id),
        "products": await shop_products(http, item.shop_id),
    }


async def reserve(
    http: httpx.AsyncClient, deal_id: int, buyer: Headers, qty: int = 1
) -> dict[str, Any]:
    r = await http.post(f"/api/deals/{deal_id}/reserve", headers=buyer, json={"qty": qty})
    assert r.status_code == 201, r.text
    hold: dict[str, Any] = r.json()["hold"]
    return hold


async def checkout(
    http: httpx.AsyncClient, hold_id: str, buyer: Headers, *, card: str = CARD_OK, key: str
) -> httpx.Response:
    return await http.post(
        f"/api/holds/{hold_id}/checkout",
        headers={**buyer, "Idempotency-Key": key},
        json={"card": card},
    )


async def hold_state(http: httpx.AsyncClient, hold_id: str, buyer: Headers) -> str:
    r = await http.get(f"/api/holds/{hold_id}", headers=buyer)
    assert r.status_code == 200, r.text
    state: str = r.json()["hold"]["state"]
    return state


async def charges_for(ledger: SandboxProvider, hold_id: str) -> list[Charge]:
    return [c for c in await ledger.charges() if c.key.startswith(f"{hold_id}:")]


async def poll(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], within_s: float = 10
) -> T:
    """Fetch until ``done`` says so or the time is up; returns the last value either way."""
    deadline = time.monotonic() + within_s
    value = await fetch()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = await fetch()
    return value


async def orders_seen_by(http: httpx.AsyncClient, headers: Headers) -> list[dict[str, Any]]:
    r = await http.get("/api/orders", headers=headers)
    assert r.status_code == 200, r.text
    orders: list[dict[str, Any]] = r.json()["orders"]
    return orders


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
async def rival(db: Database) -> SellerAccount:
    return await make_seller(db, "Rival Seller")


@pytest.fixture
def buyer(sessions: GuestSessions) -> Headers:
    return viewer_headers(sessions)[1]


@pytest.fixture
async def live(http: httpx.AsyncClient, seller: SellerAccount) -> Listing:
    return await make_listing(http, seller)


@pytest.fixture
async def scheduled(http: httpx.AsyncClient, seller: SellerAccount) -> Listing:
    return await make_listing(http, seller, start=False)


@pytest.fixture
async def hold(http: httpx.AsyncClient, live: Listing, buyer: Headers) -> dict[str, Any]:
    """Two units of the live deal, held by ``buyer``."""
    return await reserve(http, live.deal_id, buyer, qty=2)


@pytest.fixture
def ledger(redis: Redis, keys: Keyspace) -> SandboxProvider:
    return SandboxProvider(redis, keys.sandbox_charges)


# ---------------------------------------------------------------------------------------------
# 1. Catalog CRUD, ownership and seller auth


async def test_seller_creates_product_and_sku(http: httpx.AsyncClient, seller: SellerAccount):
    product = await new_product(http, seller)
    assert product["shop_id"] == seller.shop.id
    assert product["title"] == "Jacket"
    assert product["skus"] == []
    sku = await new_sku(http, seller, product["id"], stock=7)

    fetched = await get_product(http, product["id"])
    assert fetched["skus"] == [sku]
    assert sku == {
        "id": sku["id"],
        "product_id": product["id"],
        "variant": "M",
        "list_price": LIST_PRICE,
        "currency": "USD",
        "stock": 7,
        "allocated": 0,
    }
    listed = await shop_products(http, seller.shop.id or 0)
    assert [p["id"] for p in listed] == [product["id"]]


@pytest.mark.parametrize("shop_id", ["abc", "\u00b2", "-1", "9" * 16, "9" * 15, str(2**31)])
async def test_listing_products_of_a_malformed_shop_id_is_empty(
    http: httpx.AsyncClient, live: Listing, shop_id: str
):
    r = await http.get("/api/products", params={"shop_id": shop_id})
    assert (r.status_code, r.json()) == (200, {"products": []})


async def test_seller_patches_sku(http: httpx.AsyncClient, seller: SellerAccount):
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"])
    r = await http.patch(
        f"/api/skus/{sku['id']}", headers=seller.headers, json={"list_price": 8800, "stock": 3}
    )
    assert r.status_code == 200, r.text
    (fetched,) = (await get_product(http, product["id"]))["skus"]
    assert (fetched["list_price"], fetched["stock"], fetched["variant"]) == (8800, 3, "M")


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        pytest.param("skus", {"stock": None}, "invalid_request", id="sku-stock-null"),
        pytest.param("skus", {"list_price": None}, "invalid_request", id="sku-price-null"),
        pytest.param("skus", {"variant": None}, "invalid_request", id="sku-variant-null"),
        pytest.param("skus", {"stock": -1}, "invalid_request", id="sku-stock-negative"),
        pytest.param("skus", {"currency": "EUR"}, "unknown_field", id="sku-currency-not-patchable"),
        pytest.param("products", {"title": None}, "invalid_request", id="product-title-null"),
        pytest.param(
            "products", {"description": None}, "invalid_request", id="product-description-null"
        ),
        pytest.param("products", {"image_urls": None}, "invalid_request", id="product-images-null"),
        pytest.param("products", {"title": ""}, "invalid_request", id="product-title-empty"),
    ],
)
async def test_bad_patch_is_refused_and_changes_nothing(
    http: httpx.AsyncClient,
    live: Listing,
    seller: SellerAccount,
    path: str,
    body: dict[str, Any],
    code: str,
):
    target = live.sku_id if path == "skus" else live.product_id
    before = await catalog_state(http, live)
    r = await http.patch(f"/api/{path}/{target}", headers=seller.headers, json=body)
    assert_error(r, 422, code)
    assert await catalog_state(http, live) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/api/shops", {"name": "s" * 201}, id="shop-name"),
        pytest.param("/api/shops/{shop}/products", {"title": "t" * 301}, id="product-title"),
        pytest.param(
            "/api/shops/{shop}/products", {"title": "ok", "category": "c" * 101}, id="category"
        ),
        pytest.param(
            "/api/products/{product}/skus",
            {"variant": "v" * 201, "list_price": 100, "currency": "USD", "stock": 1},
            id="sku-variant",
        ),
    ],
)
async def test_text_longer_than_its_column_is_refused(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount, path: str, body: dict[str, Any]
):
    """A value the database column cannot hold is a 422 here, not a 500 on PostgreSQL."""
    before = await catalog_state(http, live)
    shops_before = (await http.get("/api/shops", headers=seller.headers)).json()
    url = path.format(shop=live.shop_id, product=live.product_id)
    r = await http.post(url, headers=seller.headers, json=body)
    assert_error(r, 422, "invalid_request")
    assert await catalog_state(http, live) == before
    assert (await http.get("/api/shops", headers=seller.headers)).json() == shops_before


async def test_product_with_skus_cannot_be_deleted(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount
):
    before = await catalog_state(http, live)
    r = await http.delete(f"/api/products/{live.product_id}", headers=seller.headers)
    assert_error(r, 409, "product_has_skus")
    assert await catalog_state(http, live) == before


async def test_a_sku_with_a_deal_stays_and_a_sku_without_one_goes(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount
):
    before = await catalog_state(http, live)
    assert_error(
        await http.delete(f"/api/skus/{live.sku_id}", headers=seller.headers), 409, "sku_in_use"
    )
    assert await catalog_state(http, live) == before
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"])
    assert (await http.delete(f"/api/skus/{sku['id']}", headers=seller.headers)).status_code == 204
    r = await http.delete(f"/api/products/{product['id']}", headers=seller.headers)
    assert r.status_code == 204


async def test_product_without_skus_is_deleted(http: httpx.AsyncClient, seller: SellerAccount):
    product = await new_product(http, seller)
    r = await http.delete(f"/api/products/{product['id']}", headers=seller.headers)
    assert r.status_code == 204
    assert_error(await http.get(f"/api/products/{product['id']}"), 404, "product_not_found")
    assert await shop_products(http, seller.shop.id or 0) == []


def seller_requests(item: Listing) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, code a rival seller gets) for every seller endpoint on ``item``."""
    sku_body = {"variant": "L", "list_price": 100, "currency": "USD", "stock": 1}
    return [
        ("POST", f"/api/shops/{item.shop_id}/products", {"title": "Sneaky"}, "shop_not_found"),
        ("PATCH", f"/api/products/{item.product_id}", {"title": "Renamed"}, "product_not_found"),
        ("DELETE", f"/api/products/{item.product_id}", None, "product_not_found"),
        ("POST", f"/api/products/{item.product_id}/skus", sku_body, "product_not_found"),
        ("PATCH", f"/api/skus/{item.sku_id}", {"stock": 0}, "sku_not_found"),
        ("POST", "/api/deals", deal_body(item.sku_id), "sku_not_found"),
        ("POST", f"/api/deals/{item.deal_id}/start", None, "deal_not_found"),
        ("POST", f"/api/deals/{item.deal_id}/stop", None, "deal_not_found"),
    ]


async def test_rival_seller_gets_404_for_everything_of_another_shop(
    http: httpx.AsyncClient, scheduled: Listing, rival: SellerAccount
):
    before = await catalog_state(http, scheduled)
    deals_before = await deals_of_sku(http, scheduled.sku_id)
    for method, path, body, code in seller_requests(scheduled):
        r = await http.request(method, path, headers=rival.headers, json=body)
        assert_error(r, 404, code)
    assert await catalog_state(http, scheduled) == before
    assert await deals_of_sku(http, scheduled.sku_id) == deals_before
    assert before["deal"]["status"] == "scheduled"


@pytest.mark.parametrize(
    ("credential", "code"),
    [
        pytest.param(None, "missing_token", id="no-token"),
        pytest.param("viewer", "seller_token_required", id="viewer-token"),
        pytest.param("lc_sk_not-a-real-token", "invalid_token", id="unknown-seller-token"),
        pytest.param("Basic dXNlcjpwYXNz", "missing_token", id="basic-auth"),
    ],
)
async def test_seller_endpoints_refuse_non_sellers(
    http: httpx.AsyncClient,
    scheduled: Listing,
    seller: SellerAccount,
    sessions: GuestSessions,
    credential: str | None,
    code: str,
):
    headers: Headers = {}
    if credential == "viewer":
        headers = viewer_headers(sessions)[1]
    elif credential is not None and credential.startswith("Basic"):
        headers = {"Authorization": credential}
    elif credential is not None:
        headers = {"Authorization": f"Bearer {credential}"}
    before = await catalog_state(http, scheduled)
    shops_before = (await http.get("/api/shops", headers=seller.headers)).json()
    calls = [
        ("GET", "/api/shops", None),
        ("POST", "/api/shops", {"name": "Another shop"}),
    ] + [(m, p, b) for m, p, b, _ in seller_requests(scheduled)]
    for method, path, body in calls:
        r = await http.request(method, path, headers=headers, json=body)
        assert_error(r, 401, code)
    assert await catalog_state(http, scheduled) == before
    assert (await http.get("/api/shops", headers=seller.headers)).json() == shops_before


# ---------------------------------------------------------------------------------------------
# 2. Deal rules


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"deal_price": LIST_PRICE}, "deal_price_not_below_list", id="price-equal"),
        pytest.param({"deal_price": LIST_PRICE + 1}, "deal_price_not_below_list", id="price-above"),
        pytest.param({"quantity": 11}, "deal_quantity_above_stock", id="quantity-above-stock"),
        pytest.param({"quantity": 2, "per_buyer_limit": 3}, "limit_above_quantity", id="limit"),
    ],
)
async def test_deal_breaking_a_rule_is_refused(
    http: httpx.AsyncClient, seller: SellerAccount, overrides: dict[str, Any], code: str
):
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=10)
    r = await http.post(
        "/api/deals", headers=seller.headers, json=deal_body(sku["id"], **overrides)
    )
    assert_error(r, 422, code)
    assert await deals_of_sku(http, sku["id"]) == []


async def test_deal_on_unknown_sku_is_404(http: httpx.AsyncClient, seller: SellerAccount):
    r = await http.post("/api/deals", headers=seller.headers, json=deal_body(UNUSED_ID))
    assert_error(r, 404, "sku_not_found")


async def test_deal_on_an_id_beyond_sql_integer_is_422(
    http: httpx.AsyncClient, seller: SellerAccount
):
    r = await http.post("/api/deals", headers=seller.headers, json=deal_body(2**31))
    assert_error(r, 422, "invalid_request")


async def test_deal_on_foreign_sku_is_404(
    http: httpx.AsyncClient, live: Listing, rival: SellerAccount
):
    r = await http.post("/api/deals", headers=rival.headers, json=deal_body(live.sku_id))
    assert_error(r, 404, "sku_not_found")
    assert [d["id"] for d in await deals_of_sku(http, live.sku_id)] == [live.deal_id]


async def test_start_loads_stock_once(
    http: httpx.AsyncClient, scheduled: Listing, seller: SellerAccount
):
    first = await http.post(f"/api/deals/{scheduled.deal_id}/start", headers=seller.headers)
    assert first.status_code == 200, first.text
    assert first.json()["deal"]["status"] == "live"
    assert first.json()["deal"]["stock"] == {"available": 10, "held": 0, "sold": 0}
    again = await http.post(f"/api/deals/{scheduled.deal_id}/start", headers=seller.headers)
    assert again.status_code == 200  # idempotent: a start whose Redis step failed can be redone
    assert await deal_stock(http, scheduled.deal_id) == {"available": 10, "held": 0, "sold": 0}
    product = (await http.get(f"/api/products/{scheduled.product_id}")).json()["product"]
    assert [(s["stock"], s["allocated"]) for s in product["skus"]] == [(10, 10)]  # once


async def test_stopped_deal_refuses_reservations(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount, buyer: Headers
):
    await reserve(http, live.deal_id, buyer)
    stopped = await http.post(f"/api/deals/{live.deal_id}/stop", headers=seller.headers)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["deal"]["status"] == "ended"
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 409, "deal_ended")
    again = await http.post(f"/api/deals/{live.deal_id}/stop", headers=seller.headers)
    assert again.status_code == 200  # stopping is idempotent, so a half-done stop can be redone
    assert (again.json()["deal"]["status"], again.json()["deal"]["phase"]) == ("ended", "ended")
    # Stopping gave the held unit back at once: nobody may start paying a stopped deal.
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_scheduled_deal_refuses_reservations(
    http: httpx.AsyncClient, scheduled: Listing, buyer: Headers
):
    r = await http.post(f"/api/deals/{scheduled.deal_id}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 409, "deal_not_live")
    deal = await get_deal(http, scheduled.deal_id)
    assert deal["status"] == "scheduled"
    assert "stock" not in deal  # nothing was loaded into Redis


async def test_a_scheduled_deal_cannot_be_stopped(
    http: httpx.AsyncClient, scheduled: Listing, seller: SellerAccount
):
    r = await http.post(f"/api/deals/{scheduled.deal_id}/stop", headers=seller.headers)
    assert_error(r, 409, "deal_not_live")
    assert (await get_deal(http, scheduled.deal_id))["status"] == "scheduled"


async def test_unknown_deal_is_404(http: httpx.AsyncClient, buyer: Headers):
    r = await http.post(f"/api/deals/{UNUSED_ID}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 404, "deal_not_found")
    assert_error(await http.get(f"/api/deals/{UNUSED_ID}"), 404, "deal_not_found")


async def test_deal_starting_later_refuses_reservations(
    http: httpx.AsyncClient, seller: SellerAccount, buyer: Headers
):
    starts = now_ms() + 3_600_000
    item = await make_listing(http, seller, starts_ms=starts)
    r = await http.post(f"/api/deals/{item.deal_id}/reserve", headers=buyer, json={"qty": 1})
    error = assert_error(r, 409, "deal_not_started")
    assert error["details"]["starts_ms"] == starts
    assert await deal_stock(http, item.deal_id) == {"available": 10, "held": 0, "sold": 0}


# ---------------------------------------------------------------------------------------------
# 3. Bad input on reserve: a 4xx with a code, and the deal's stock untouched


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
):
    kwargs = dict(request_kwargs)
    headers = {**buyer, **kwargs.pop("headers", {})}
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=headers, **kwargs)
    assert_error(r, status, code)
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_oversized_chunked_reserve_is_413(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
):
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
):
    headers = {} if authorization is None else {"Authorization": authorization}
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=headers, json={"qty": 1})
    assert_error(r, 401, code)
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_reserve_on_a_huge_deal_id_is_404(
    http: httpx.AsyncClient, live: Listing, buyer: Headers
):
    for huge in ("9" * 40, "9" * 15, str(2**31)):
        r = await http.post(f"/api/deals/{huge}/reserve", headers=buyer, json={"qty": 1})
        assert_error(r, 404, "not_found")
        assert_error(await http.get(f"/api/deals/{huge}"), 404, "not_found")
        assert_error(await http.get(f"/api/products/{huge}"), 404, "not_found")
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_good_reserve_holds_stock(http: httpx.AsyncClient, live: Listing, buyer: Headers):
    """The baseline the refusals above are measured against."""
    hold = await reserve(http, live.deal_id, buyer, qty=3)
    assert (hold["qty"], hold["state"]) == (3, "held")
    assert hold["id"].startswith(f"{live.deal_id}-")
    assert await deal_stock(http, live.deal_id) == {"available": 7, "held": 3, "sold": 0}


# ---------------------------------------------------------------------------------------------
# 4. Checkout


async def test_approved_card_sells_the_hold(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
):
    r = await checkout(http, hold["id"], buyer, key="pay-1")
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    order = r.json()["order"]
    (charge,) = await charges_for(ledger, hold["id"])
    assert order == {
        "hold_id": hold["id"],
        "status": "paid",
        "qty": 2,
        "unit_price": DEAL_PRICE,
        "amount": 2 * DEAL_PRICE,
        "currency": "USD",
        "payment_ref": charge.id,
    }
    assert (charge.status, charge.amount, charge.refunded) == (
        ChargeStatus.APPROVED,
        2 * DEAL_PRICE,
        False,
    )
    assert await hold_state(http, hold["id"], buyer) == "sold"
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 0, "sold": 2}


async def test_replay_returns_the_same_response_and_charges_once(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
):
    first = await checkout(http, hold["id"], buyer, key="pay-1")
    replay = await checkout(http, hold["id"], buyer, key="pay-1")
    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await charges_for(ledger, hold["id"])) == 1
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 0, "sold": 2}


async def test_same_key_with_another_body_is_refused(
    http: httpx.AsyncClient, buyer: Headers, hold: dict[str, Any], ledger: SandboxProvider
):
    first = await checkout(http, hold["id"], buyer, key="pay-1")
    assert first.status_code == 201, first.text
    r = await checkout(http, hold["id"], buyer, card=CARD_DECLINED, key="pay-1")
    assert_error(r, 422, "idempotency_key_reused")
    assert len(await charges_for(ledger, hold["id"])) == 1


@pytest.mark.parametrize(
    "key_header",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Idempotency-Key": ""}, id="empty"),
        pytest.param({"Idempotency-Key": "k" * 129}, id="too-long"),
    ],
)
async def test_checkout_needs_an_idempotency_key(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
    key_header: Headers,
):
    r = await http.post(
        f"/api/holds/{hold['id']}/checkout", headers={**buyer, **key_header}, json={"card": CARD_OK}
    )
    assert_error(r, 422, "idempotency_key_required")
    assert await charges_for(ledger, hold["id"]) == []
    assert await hold_state(http, hold["id"], buyer) == "held"
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 2, "sold": 0}


@pytest.mark.parametrize(
    ("card", "code"),
    [
        pytest.param(CARD_DECLINED, "card_declined", id="declined"),
        pytest.param(CARD_NO_FUNDS, "insufficient_funds", id="insufficient-funds"),
    ],
)
async def test_failed_payment_keeps_the_hold_and_a_new_key_can_pay(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
    card: str,
    code: str,
):
    failed = await checkout(http, hold["id"], buyer, card=card, key="try-1")
    assert_error(failed, 402, code)
    assert await hold_state(http, hold["id"], buyer) == "held"
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 2, "sold": 0}

    replay = await checkout(http, hold["id"], buyer, card=card, key="try-1")
    assert (replay.status_code, replay.content) == (402, failed.content)

    paid = await checkout(http, hold["id"], buyer, card=CARD_OK, key="try-2")
    assert paid.status_code == 201, paid.text
    statuses = sorted(c.status.value for c in await charges_for(ledger, hold["id"]))
    assert statuses == sorted([code, ChargeStatus.APPROVED.value])
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 0, "sold": 2}


@pytest.mark.parametrize(
    ("card", "code"),
    [
        pytest.param("4111111111111111", "invalid_card", id="unknown-card"),
        pytest.param("4242", "invalid_request", id="too-short"),
        pytest.param(4242424242424242, "invalid_request", id="number-not-string"),
    ],
)
async def test_invalid_card_charges_nothing_and_leaves_the_hold_held(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
    card: Any,
    code: str,
):
    r = await http.post(
        f"/api/holds/{hold['id']}/checkout",
        headers={**buyer, "Idempotency-Key": "k"},
        json={"card": card},
    )
    assert_error(r, 422, code)
    assert await charges_for(ledger, hold["id"]) == []
    assert await hold_state(http, hold["id"], buyer) == "held"
    # Still the buyer's to give back, which a hold stuck mid-payment would refuse.
    assert (await http.delete(f"/api/holds/{hold['id']}", headers=buyer)).status_code == 204
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_unknown_sandbox_card_is_invalid_card(
    http: httpx.AsyncClient, buyer: Headers, hold: dict[str, Any]
):
    r = await checkout(http, hold["id"], buyer, card="4111111111111111", key="k")
    assert_error(r, 422, "invalid_card")
    paid = await checkout(http, hold["id"], buyer, key="k")  # the key was not used up
    assert paid.status_code == 201, paid.text


async def test_foreign_hold_is_404_and_charges_nothing(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    sessions: GuestSessions,
    ledger: SandboxProvider,
):
    _, stranger = viewer_headers(sessions)
    assert_error(await checkout(http, hold["id"], stranger, key="k"), 404, "hold_not_found")
    assert_error(
        await http.get(f"/api/holds/{hold['id']}", headers=stranger), 404, "hold_not_found"
    )
    assert_error(
        await http.delete(f"/api/holds/{hold['id']}", headers=stranger), 404, "hold_not_found"
    )
    assert await charges_for(ledger, hold["id"]) == []
    assert await hold_state(http, hold["id"], buyer) == "held"
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 2, "sold": 0}


async def test_released_hold_cannot_be_paid(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
):
    released = await http.delete(f"/api/holds/{hold['id']}", headers=buyer)
    assert released.status_code == 204
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}
    assert_error(await checkout(http, hold["id"], buyer, key="k"), 409, "hold_released")
    assert await charges_for(ledger, hold["id"]) == []
    assert await hold_state(http, hold["id"], buyer) == "released"
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


@pytest.mark.parametrize(
    "hold_id", ["abc", "1-x", "-1", "1-", "1-2-3", "\u00b2-1", "9" * 41, "1-" + "9" * 39]
)
async def test_malformed_hold_id_is_404(
    http: httpx.AsyncClient, buyer: Headers, hold_id: str, ledger: SandboxProvider
):
    charges_before = len(await ledger.charges())
    assert_error(await checkout(http, hold_id, buyer, key="k"), 404, "hold_not_found")
    assert_error(await http.get(f"/api/holds/{hold_id}", headers=buyer), 404, "hold_not_found")
    assert_error(await http.delete(f"/api/holds/{hold_id}", headers=buyer), 404, "hold_not_found")
    assert len(await ledger.charges()) == charges_before


async def test_concurrent_replays_charge_once(
    http: httpx.AsyncClient,
    live: Listing,
    buyer: Headers,
    hold: dict[str, Any],
    ledger: SandboxProvider,
):
    responses = await asyncio.gather(
        *(checkout(http, hold["id"], buyer, key="storm") for _ in range(20))
    )
    paid = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(paid) + len(busy) == 20, [r.text for r in responses]
    assert paid
    assert len({r.content for r in paid}) == 1
    for r in busy:
        assert_error(r, 409, "request_in_progress")
    assert len(await charges_for(ledger, hold["id"])) == 1
    assert await deal_stock(http, live.deal_id) == {"available": 8, "held": 0, "sold": 2}


# ---------------------------------------------------------------------------------------------
# 5. Orders


@dataclass(frozen=True)
class PaidOrder:
    item: Listing
    buyer: Headers
    payment_ref: str
    order: dict[str, Any]


async def pay_and_wait_for_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> PaidOrder:
    item = await make_listing(http, seller)
    buyer_id, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer, qty=2)
    r = await checkout(http, hold["id"], buyer, key="pay")
    assert r.status_code == 201, r.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert len(orders) == 1, "the pipeline did not persist the order within 10 s"
    (order,) = orders
    assert (order["hold_id"], order["buyer_id"]) == (hold["id"], buyer_id)
    return PaidOrder(item, buyer, r.json()["order"]["payment_ref"], order)


@pytest.fixture
async def paid(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> PaidOrder:
    return await pay_and_wait_for_order(http, seller, sessions)


async def test_paid_order_reaches_sql(http: httpx.AsyncClient, paid: PaidOrder):
    order = paid.order
    assert order["deal_id"] == paid.item.deal_id
    assert order["shop_id"] == paid.item.shop_id
    assert order["sku_id"] == paid.item.sku_id
    assert (order["quantity"], order["unit_price"], order["total"]) == (2, DEAL_PRICE, 9800)
    assert (order["status"], order["payment_ref"]) == ("paid", paid.payment_ref)
    assert await sku_stock(http, paid.item) == 8  # the SKU gave up what the deal sold


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


async def test_the_shipping_address_given_at_checkout_reaches_the_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, ledger: SandboxProvider
):
    item = await make_listing(http, seller)
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer)
    pay = f"/api/holds/{hold['id']}/checkout"
    for bad in ({**ADDRESS, "country": "gb"}, {**ADDRESS, "city": " "}, {"name": "No street"}):
        r = await http.post(
            pay, headers={**buyer, "Idempotency-Key": "k"}, json={"card": CARD_OK, "shipping": bad}
        )
        assert_error(r, 422, "invalid_request")
    assert await charges_for(ledger, hold["id"]) == []  # refused before any charge
    assert await hold_state(http, hold["id"], buyer) == "held"
    r = await http.post(
        pay, headers={**buyer, "Idempotency-Key": "k"}, json={"card": CARD_OK, "shipping": ADDRESS}
    )
    assert r.status_code == 201, r.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert [o["shipping"] for o in orders] == [{**ADDRESS, "line2": ""}]
    assert (orders[0]["carrier"], orders[0]["tracking_number"]) == ("", "")


async def test_a_seller_cancels_an_order_before_it_ships(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
):
    path = f"/api/orders/{paid.order['id']}"
    r = await http.post(f"{path}/cancel", headers=seller.headers, json={"note": "out of stock"})
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "cancelled"
    assert_error(
        await http.post(f"{path}/refund", headers=seller.headers), 409, "invalid_transition"
    )


async def test_buyers_see_only_their_own_orders(
    http: httpx.AsyncClient, paid: PaidOrder, sessions: GuestSessions
):
    _, stranger = viewer_headers(sessions)
    assert await orders_seen_by(http, stranger) == []
    hold_path = f"/api/orders/by-hold/{paid.order['hold_id']}"
    assert_error(await http.get(hold_path, headers=stranger), 404, "order_not_found")
    mine = await http.get(hold_path, headers=paid.buyer)
    assert mine.status_code == 200, mine.text
    assert mine.json()["order"]["id"] == paid.order["id"]
    assert [(e["from"], e["to"]) for e in mine.json()["order"]["events"]] == [(None, "paid")]


async def test_sellers_see_only_their_shops_orders(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount, rival: SellerAccount
):
    assert [o["id"] for o in await orders_seen_by(http, seller.headers)] == [paid.order["id"]]
    assert await orders_seen_by(http, rival.headers) == []
    path = f"/api/orders/{paid.order['id']}"
    assert_error(await http.get(path, headers=rival.headers), 404, "order_not_found")
    assert_error(await http.post(f"{path}/confirm", headers=rival.headers), 404, "order_not_found")
    r = await http.get(path, headers=seller.headers)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "paid"
    assert len(r.json()["order"]["events"]) == 1


async def test_seller_moves_order_to_completed(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
):
    path = f"/api/orders/{paid.order['id']}"
    steps = [
        ("confirm", "awaiting_shipment"),
        ("ship", "shipped"),
        ("deliver", "delivered"),
        ("complete", "completed"),
    ]
    tracking = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
    for action, status in steps:
        if action == "ship":
            error = assert_error(
                await http.post(f"{path}/ship", headers=seller.headers, json={"carrier": "UPS"}),
                422,
                "tracking_required",
            )
            assert error["details"]["missing"] == ["tracking_number"]
        if action == "deliver":
            assert_error(
                await http.post(f"{path}/deliver", headers=seller.headers, json={"carrier": "UPS"}),
                422,
                "unexpected_tracking",
            )
        body = {"note": action, **(tracking if action == "ship" else {})}
        r = await http.post(f"{path}/{action}", headers=seller.headers, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["order"]["status"] == status

    error = assert_error(
        await http.post(f"{path}/ship", headers=seller.headers), 409, "invalid_transition"
    )
    assert error["details"]["status"] == "completed"
    assert_error(await http.post(f"{path}/teleport", headers=seller.headers), 404, "unknown_action")

    r = await http.get(path, headers=seller.headers)
    order = r.json()["order"]
    assert order["status"] == "completed"
    assert (order["carrier"], order["tracking_number"]) == ("UPS", "1Z999AA10123456784")
    assert [(e["from"], e["to"], e["note"]) for e in order["events"]] == [
        (None, "paid", ""),
        ("paid", "awaiting_shipment", "confirm"),
        ("awaiting_shipment", "shipped", "ship"),
        ("shipped", "delivered", "deliver"),
        ("delivered", "completed", "complete"),
    ]
    assert {e["actor"] for e in order["events"][1:]} == {f"seller:{seller.seller.id}"}


async def test_order_filter_by_status(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
):
    r = await http.get("/api/orders", headers=seller.headers, params={"status": "paid"})
    assert [o["id"] for o in r.json()["orders"]] == [paid.order["id"]]
    r = await http.get("/api/orders", headers=seller.headers, params={"status": "shipped"})
    assert r.json()["orders"] == []


# ---------------------------------------------------------------------------------------------
# 6. Ops endpoints


async def test_openapi_lists_reserve_and_checkout(http: httpx.AsyncClient):
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "post" in paths["/api/deals/{deal_id}/reserve"]
    checkout_op = paths["/api/holds/{hold_id}/checkout"]["post"]
    assert {p["name"] for p in checkout_op["parameters"]} == {"hold_id", "Idempotency-Key"}


async def test_readyz_reports_every_check_ok(http: httpx.AsyncClient):
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"redis": "ok", "database": "ok"}}


def reservations_ok(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('livecart_reservations_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_reservations(http: httpx.AsyncClient, live: Listing, buyer: Headers):
    before = reservations_ok((await http.get("/metrics")).text)
    await reserve(http, live.deal_id, buyer)
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert "livecart_reservations_total" in r.text
    assert reservations_ok(r.text) == before + 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/shops", {"name": "a\u0000b"}),
        ("/api/shops/{shop}/products", {"title": "a\u0000b"}),
        ("/api/shops/{shop}/products", {"title": "ok", "description": "a\u0000b"}),
        ("/api/shops/{shop}/products", {"title": "ok", "image_urls": ["https://x/\u0000"]}),
    ],
)
async def test_nul_characters_are_refused_not_stored(
    http: httpx.AsyncClient, seller: SellerAccount, path: str, body: dict[str, Any]
):
    """PostgreSQL cannot store NUL: it must be a 422 here on every database, never a 500."""
    shops_before = (await http.get("/api/shops", headers=seller.headers)).json()
    products_before = await shop_products(http, seller.shop.id or 0)
    r = await http.post(path.format(shop=seller.shop.id), headers=seller.headers, json=body)
    assert_error(r, 422, "invalid_request")
    assert (await http.get("/api/shops", headers=seller.headers)).json() == shops_before
    assert await shop_products(http, seller.shop.id or 0) == products_before


async def test_unknown_status_filters_are_422(
    http: httpx.AsyncClient, seller: SellerAccount, buyer: Headers
):
    for status in ("bogus", "\u0000"):
        assert_error(await http.get("/api/deals", params={"status": status}), 422, "invalid_status")
        r = await http.get("/api/orders", params={"status": status}, headers=seller.headers)
        assert_error(r, 422, "invalid_status")
    r = await http.get("/api/orders/by-hold/%00", headers=buyer)
    assert_error(r, 404, "order_not_found")


async def new_deal(
    http: httpx.AsyncClient, seller: SellerAccount, sku_id: int, quantity: int
) -> httpx.Response:
    body = {
        "sku_id": sku_id,
        "deal_price": 4900,
        "quantity": quantity,
        "per_buyer_limit": 1,
        "duration_s": 600,
    }
    return await http.post("/api/deals", headers=seller.headers, json=body)


async def test_two_deals_can_never_promise_the_same_units(
    http: httpx.AsyncClient, seller: SellerAccount
):
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=10)
    first = (await new_deal(http, seller, sku["id"], 10)).json()["deal"]
    second = (await new_deal(http, seller, sku["id"], 10)).json()["deal"]  # both scheduled: fine
    started = await http.post(f"/api/deals/{first['id']}/start", headers=seller.headers)
    assert started.status_code == 200
    refused = await http.post(f"/api/deals/{second['id']}/start", headers=seller.headers)
    error = assert_error(refused, 409, "stock_unavailable")
    assert error["details"] == {"quantity": 10, "unallocated": 0}
    assert (await get_deal(http, second["id"]))["status"] == "scheduled"
    assert_error(await new_deal(http, seller, sku["id"], 1), 422, "deal_quantity_above_stock")
    cut = await http.patch(f"/api/skus/{sku['id']}", headers=seller.headers, json={"stock": 9})
    assert_error(cut, 409, "stock_allocated")
    skus = (await get_product(http, product["id"]))["skus"]
    assert [(s["stock"], s["allocated"]) for s in skus] == [(10, 10)]
    raised = await http.patch(f"/api/skus/{sku['id']}", headers=seller.headers, json={"stock": 20})
    assert raised.json()["sku"]["stock"] == 20
    again = await http.post(f"/api/deals/{second['id']}/start", headers=seller.headers)
    assert again.status_code == 200  # with more stock, the second deal gets its own units
