"""Fixtures of the HTTP API tests: a rival seller, a guest buyer, listings (live or scheduled),
a hold, the sandbox ledger and a paid order, all made over HTTP on the session's server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from checkout.keys import Keyspace
from checkout.payments import SandboxProvider
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    Headers,
    Listing,
    PaidOrder,
    make_listing,
    make_seller,
    pay_and_wait_for_order,
    reserve,
)
from web.auth import GuestSessions


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
    return SandboxProvider(redis, keys.sandbox)


@pytest.fixture
async def paid(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> PaidOrder:
    return await pay_and_wait_for_order(http, seller, sessions)
