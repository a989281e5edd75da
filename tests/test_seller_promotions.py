"""The seller center's Promotions section over its forms, as a browser posts them (decision
0028): the shipping fee is saved and charged at the next checkout; a voucher made there is
listed with its claims and the paid orders that redeemed it; a discount started there prices
checkouts until it is ended there; bad input is refused with the reason by the field and
changes nothing."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import checkout, orders_seen_by, poll
from tests.test_cart import cart_checkout, two_skus
from tests.test_seller_pages import browser_like, sign_in
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
assert browser_like  # a fixture, used by name


async def test_shipping_and_vouchers_are_set_from_the_seller_center(
    http: httpx.AsyncClient,
    browser_like: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    _, large = await two_skus(http, seller)
    csrf = await sign_in(browser_like, seller.token)
    shop = {"csrf": csrf, "shop_id": str(seller.shop.id), "currency": "USD"}

    saved = await browser_like.post(
        "/seller/shipping", data={**shop, "kind": "flat", "fee": "3.50", "free_over": ""}
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/seller?promo_shop={seller.shop.id}#promotions"
    bad = await browser_like.post("/seller/shipping", data={**shop, "kind": "flat", "fee": "3,5"})
    assert bad.status_code == 422
    assert "Prices are written like" in bad.text
    rule = (await http.get(f"/api/shops/{seller.shop.id}/shipping")).json()["shipping"]
    assert rule == {"kind": "flat", "fee": 350, "free_over": 0}  # the refusal changed nothing

    voucher = {
        **shop,
        "code": "save3",
        "kind": "fixed",
        "value": "3",
        "min_spend": "",
        "budget": "20",
        "per_buyer": "1",
        "days": "7",
        "room_id": "",
    }
    made = await browser_like.post("/seller/vouchers", data=voucher)
    assert made.status_code == 303, made.text
    for wrong, reason in [
        ({"code": "SAVE3"}, "The shop has a voucher of that code"),
        ({"code": "X"}, "The voucher&#39;s code must be"),
        ({"code": "TEN", "kind": "percent", "value": "101"}, "value must be at most 10000 bps"),
        ({"code": "LONG", "days": "400"}, "A voucher runs 1 to 365 days"),
    ]:
        refused = await browser_like.post("/seller/vouchers", data={**voucher, **wrong})
        assert refused.status_code in (409, 422), refused.text
        assert reason in refused.text, (wrong, refused.text[:300])

    # A buyer redeems it, paying the shop's shipping fee too.
    _, buyer = viewer_headers(sessions)
    held = await cart_checkout(http, buyer, items=[{"sku_id": large, "qty": 1}], voucher="SAVE3")
    assert held.status_code == 201, held.text
    assert held.json()["total"] == 2500 - 300 + 350
    assert (await checkout(http, held.json()["hold"]["id"], buyer, key="sc-1")).status_code == 201
    await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)

    page = await browser_like.get("/seller")
    row = re.search(r'<tr id="voucher-SAVE3".*?</tr>', page.text, re.DOTALL)
    assert row, page.text
    assert 'data-claimed="1"' in row.group(0) and 'data-redeemed="1"' in row.group(0)
    assert "$3.00 off" in row.group(0)
    assert 'value="3.50"' in page.text  # the fee field shows the rule saved


async def test_discounts_and_bundles_are_started_and_ended_from_the_seller_center(
    http: httpx.AsyncClient,
    browser_like: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    m, _ = await two_skus(http, seller)
    product_id = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()[
        "products"
    ][0]["id"]
    csrf = await sign_in(browser_like, seller.token)
    shop = {"csrf": csrf, "shop_id": str(seller.shop.id), "currency": "USD"}
    form = {**shop, "kind": "discount", "percent": "25", "size": "", "price": "", "days": "3"}
    refused = await browser_like.post("/seller/promotions", data=form)  # no product ticked
    assert refused.status_code == 422
    assert "products must be 1 to 200 ids" in refused.text
    made = await browser_like.post(
        "/seller/promotions", data={**form, f"product-{product_id}": str(product_id)}
    )
    assert made.status_code == 303, made.text
    bundle = {**form, "kind": "bundle", "size": "3", "price": "x", f"product-{product_id}": "1"}
    refused = await browser_like.post("/seller/promotions", data=bundle)
    assert refused.status_code == 422 and "Prices are written like" in refused.text

    (listed,) = (await http.get(f"/api/shops/{seller.shop.id}/promotions")).json()["promotions"]
    assert (listed["kind"], listed["bps"], listed["products"]) == ("discount", 2500, [product_id])
    page = await browser_like.get("/seller")
    row = re.search(rf'<tr id="promotion-{listed["id"]}".*?</tr>', page.text, re.DOTALL)
    assert row and "25.0% off Jacket" in row.group(0) and 'data-running="1"' in row.group(0)

    # A buyer's checkout gets the 25 % off; once ended from the seller center, the next one
    # does not.
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": m, "qty": 1}]
    assert (await cart_checkout(http, buyer, items=items)).json()["total"] == 9900 - 2475
    ended = await browser_like.post(
        f"/seller/promotions/{listed['id']}/end", data={"csrf": csrf, "shop_id": shop["shop_id"]}
    )
    assert ended.status_code == 303, ended.text
    assert (await cart_checkout(http, buyer, items=items)).json()["total"] == 9900
    page = await browser_like.get("/seller")
    row = re.search(rf'<tr id="promotion-{listed["id"]}".*?</tr>', page.text, re.DOTALL)
    assert row and "ended" in row.group(0) and "End now" not in row.group(0)
