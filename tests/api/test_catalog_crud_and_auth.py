"""The catalog over HTTP: products and SKUs made, patched and deleted by their seller, refusals
that change nothing (bad patches, text too long for its column, NUL characters), and a rival
seller or a non-seller refused on every seller endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    LIST_PRICE,
    Headers,
    Listing,
    assert_error,
    catalog_state,
    deal_body,
    deals_of_sku,
    get_product,
    new_product,
    new_sku,
    shop_products,
)
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def test_seller_creates_product_and_sku(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
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
        "options": {},
        "image_url": "",
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
) -> None:
    r = await http.get("/api/products", params={"shop_id": shop_id})
    assert (r.status_code, r.json()) == (200, {"products": []})


async def test_seller_patches_sku(http: httpx.AsyncClient, seller: SellerAccount) -> None:
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
) -> None:
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
) -> None:
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
) -> None:
    before = await catalog_state(http, live)
    r = await http.delete(f"/api/products/{live.product_id}", headers=seller.headers)
    assert_error(r, 409, "product_has_skus")
    assert await catalog_state(http, live) == before


async def test_a_sku_with_a_deal_stays_and_a_sku_without_one_goes(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount
) -> None:
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


async def test_product_without_skus_is_deleted(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
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
) -> None:
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
) -> None:
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
) -> None:
    """PostgreSQL cannot store NUL: it must be a 422 here on every database, never a 500."""
    shops_before = (await http.get("/api/shops", headers=seller.headers)).json()
    products_before = await shop_products(http, seller.shop.id or 0)
    r = await http.post(path.format(shop=seller.shop.id), headers=seller.headers, json=body)
    assert_error(r, 422, "invalid_request")
    assert (await http.get("/api/shops", headers=seller.headers)).json() == shops_before
    assert await shop_products(http, seller.shop.id or 0) == products_before
