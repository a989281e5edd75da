"""A shop's address, /shop/{handle}, is unique, and requests racing for one name each get their
own: the unique index decides, and the loser draws another instead of failing (CI once saw a
500 here when two creators signed up as "Creator" at once)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from catalog import service
from catalog.error_codes import CatalogErrorCode
from catalog.models import Seller, Shop
from catalog.rules import handle_for
from kernel.db import Database
from kernel.errors import Conflict, NotFound
from tests.conftest import SellerAccount

pytestmark = pytest.mark.storage

RACERS = 8


async def sign_up(db: Database, name: str, email: str) -> tuple[Seller, Shop, str]:
    async with db.session() as session:
        return await service.create_seller(session, name, email)


async def test_sign_ups_racing_for_one_shop_name_each_get_a_shop_of_their_own(
    db: Database,
) -> None:
    name = f"Race {secrets.token_hex(4)}"
    made = await asyncio.gather(
        *(sign_up(db, name, f"race-{secrets.token_hex(6)}@example.com") for _ in range(RACERS))
    )
    handles = [shop.handle for _, shop, _ in made]
    assert len(set(handles)) == RACERS
    base = handle_for(f"{name}'s shop")
    assert handles.count(base) == 1  # the free name went to one of them, the rest are suffixed
    assert all(h == base or h.startswith(f"{base}-") for h in handles)
    async with db.session() as session:
        for seller, shop, token in made:
            assert (await service.seller_for_token(session, token)).id == seller.id
            assert (await service.shop_by_handle(session, shop.handle)).seller_id == seller.id


async def test_sign_ups_racing_for_one_email_make_one_seller_and_refuse_the_rest(
    db: Database,
) -> None:
    email = f"race-{secrets.token_hex(6)}@example.com"
    names = [f"Racer {i} {secrets.token_hex(3)}" for i in range(RACERS)]
    results = await asyncio.gather(
        *(sign_up(db, name, email) for name in names), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(made) == 1 and len(refused) == RACERS - 1, results
    assert {r.code for r in refused} == {CatalogErrorCode.SELLER_EXISTS}
    async with db.session() as session:
        for name in names:  # the refused sign-ups left no shop behind
            handle = handle_for(f"{name}'s shop")
            if name == made[0][0].name:
                assert (await service.shop_by_handle(session, handle)).seller_id == made[0][0].id
            else:
                with pytest.raises(NotFound):
                    await service.shop_by_handle(session, handle)


async def test_shops_opened_at_once_under_one_name_get_an_address_each(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    name = f"Pop-up {secrets.token_hex(4)}"
    answers = await asyncio.gather(
        *(
            http.post("/api/shops", json={"name": name}, headers=seller.headers)
            for _ in range(RACERS)
        )
    )
    assert [a.status_code for a in answers] == [201] * RACERS, [a.text for a in answers]
    handles = {a.json()["shop"]["handle"] for a in answers}
    assert len(handles) == RACERS and handle_for(name) in handles
    listed = (await http.get("/api/shops", headers=seller.headers)).json()["shops"]
    assert handles <= {s["handle"] for s in listed}
