"""``livecart demo`` as a newcomer runs it: the room it prints sells the deal it started, a rerun
on the same data directory seeds nothing twice, and every token it prints is random."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.test_cli import livecart

# No storage mark: livecart runs here unconfigured (its own Valkey and SQLite file) whatever
# REDIS_URL and DATABASE_URL say, so CI's storage step would only repeat it.

TOKEN = re.compile(r"seller token:\s+(lc_sk_[A-Za-z0-9_-]+)")


def printed_token(workdir: Path, base: str) -> str:
    """The seller token from the banner of the demo serving ``base`` (its log is named by the
    port: see tests/test_cli.py's ``livecart``)."""
    log = workdir / f"demo-{base.rsplit(':', 1)[1]}.log"
    found = TOKEN.findall(log.read_text())
    assert found, log.read_text()
    return found[-1]


def seeded(base: str, token: str) -> dict[str, object]:
    """What the demo made, as its seller sees it through the API."""
    auth = {"Authorization": f"Bearer {token}"}
    shops = httpx.get(f"{base}/api/shops", headers=auth)
    assert shops.status_code == 200, shops.text
    products = httpx.get(f"{base}/api/products").json()["products"]
    return {
        "shops": [s["id"] for s in shops.json()["shops"]],
        "products": sorted((p["id"], p["title"]) for p in products),
        "rooms": [(r["id"], r["status"]) for r in httpx.get(f"{base}/api/rooms").json()["rooms"]],
        "deals": sorted(d["id"] for d in httpx.get(f"{base}/api/deals").json()["deals"]),
    }


def test_the_demo_room_sells_the_demo_deal(tmp_path: Path) -> None:
    with livecart("demo", tmp_path) as base:
        room = httpx.get(f"{base}/api/rooms/1").json()["room"]
        live = [d for d in room["deals"] if d["status"] == "live"]
        assert [d["deal_id"] for d in live] == [1]  # the deal the banner calls "live deal"
        assert live[0]["product_id"] == room["pinned"]
        session = httpx.post(f"{base}/api/session").json()
        hold = httpx.post(
            f"{base}/api/deals/1/reserve",
            json={"qty": 1},
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        assert hold.status_code == 201, hold.text
        # The pinned jacket comes in colours and sizes; the deal sells its first SKU.
        jacket = httpx.get(f"{base}/api/products/{room['pinned']}").json()["product"]
        assert [o["name"] for o in jacket["options"]] == ["Colour", "Size"]
        variants = [s["variant"] for s in jacket["skus"]]
        assert variants == ["Black / M", "Black / S", "Black / L", "Sand / S", "Sand / M"]
        assert jacket["skus"][0]["id"] == live[0]["sku_id"]
        bag = next(p for p in room["bag"] if p["product_id"] == room["pinned"])
        assert [s["options"] for s in bag["skus"]][3] == {"Colour": "Sand", "Size": "S"}
        storefront = httpx.get(f"{base}/shop/{demo_shop(tmp_path, base)}/p/{jacket['id']}")
        assert storefront.status_code == 200
        assert storefront.text.count('class="variant"') == 5
        assert '<bdi class="option-value">Sand</bdi>' in storefront.text


def demo_shop(workdir: Path, base: str) -> str:
    """The demo shop's storefront handle, as its seller sees it."""
    auth = {"Authorization": f"Bearer {printed_token(workdir, base)}"}
    handle: str = httpx.get(f"{base}/api/shops", headers=auth).json()["shops"][0]["handle"]
    return handle


def test_a_second_demo_on_one_data_dir_seeds_nothing_twice(tmp_path: Path) -> None:
    with livecart("demo", tmp_path) as base:
        first_token = printed_token(tmp_path, base)
        first = seeded(base, first_token)
    assert first["rooms"] == [(1, "live")] and len(first["products"]) == 2, first

    with livecart("demo", tmp_path) as base:
        second_token = printed_token(tmp_path, base)
        assert seeded(base, second_token) == first
        # Only a hash of the token is kept, so a rerun prints a new one; the old one is void.
        old = httpx.get(f"{base}/api/shops", headers={"Authorization": f"Bearer {first_token}"})
        assert old.status_code == 401

    elsewhere = tmp_path / "fresh"
    elsewhere.mkdir()
    with livecart("demo", elsewhere) as base:
        fresh_token = printed_token(elsewhere, base)
    tokens = [first_token, second_token, fresh_token]
    bodies = [t.removeprefix("lc_sk_") for t in tokens]
    # 32 bytes from the CSPRNG (43 base64url characters): nothing of a clock or a counter.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", b) for b in bodies), tokens
    assert len(set(bodies)) == 3
    assert all(shared_start(a, b) < 8 for a in bodies for b in bodies if a != b)


def shared_start(a: str, b: str) -> int:
    """How many leading characters two strings share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
