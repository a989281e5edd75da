"""Go-live mail (live/news.py) against a real SQLite or PostgreSQL database: every follower is
mailed once, at most ``MAIL_CONCURRENCY`` at a time, a mail that fails is logged and the others
still go, and a second telling of the same room sends nothing."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from kernel.clock import now_ms
from kernel.db import Database
from live.models import Follow, LiveRoom
from live.news import MAIL_CONCURRENCY, LiveNews
from live.room_states import RoomStatus
from people.mail import Mail
from people.models import Account
from tests.helpers import make_seller, until

pytestmark = pytest.mark.storage

FOLLOWERS = 30


class GatedSender:
    """Holds every mail until the test opens the gate, counting how many wait at once; the
    mail to ``broken`` fails as a refusing server's would."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.gate = asyncio.Event()
        self.waiting = 0
        self.most_waiting = 0
        self.sent: list[str] = []

    async def send(self, mail: Mail) -> None:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        if mail.to == self.broken:
            raise ConnectionRefusedError("the mail server said no")
        self.sent.append(mail.to)


async def live_room_with_followers(db: Database) -> tuple[int, list[str]]:
    seller = await make_seller(db, "Night Market")
    assert seller.seller.id is not None
    addresses = [f"fan-{secrets.token_hex(6)}@example.com" for _ in range(FOLLOWERS)]
    async with db.session() as session:
        room = LiveRoom(
            shop_id=seller.shop.id or 0,
            seller_id=seller.seller.id,
            title="Midnight drop",
            status=RoomStatus.LIVE,
            created_ms=now_ms(),
        )
        accounts = [
            Account(
                email=a,
                display_name="Fan",
                password_hash="-",
                buyer_id=secrets.token_hex(8),
                created_ms=now_ms(),
            )
            for a in addresses
        ]
        session.add_all([room, *accounts])
        await session.flush()
        session.add_all(
            Follow(account_id=a.id or 0, seller_id=seller.seller.id, created_ms=now_ms())
            for a in accounts
        )
        await session.commit()
        assert room.id is not None
        return room.id, addresses


async def test_followers_are_mailed_once_a_few_at_a_time(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    room_id, addresses = await live_room_with_followers(db)
    sender = GatedSender(broken=addresses[0])
    news = LiveNews(db, sender)
    try:
        assert await news.room_went_live(room_id, "https://shop.example") == FOLLOWERS
        assert await news.room_went_live(room_id, "https://shop.example") == 0  # told already
        await until(lambda: asyncio.sleep(0, sender.waiting == MAIL_CONCURRENCY), "mails waiting")

        def logged() -> bool:
            return any(addresses[0] in r.getMessage() for r in caplog.records)

        with caplog.at_level(logging.ERROR, logger="livecart.news"):
            sender.gate.set()
            await until(
                lambda: asyncio.sleep(0, len(sender.sent) == FOLLOWERS - 1 and logged()),
                "the mails sent and the failure logged",
            )
        assert sender.most_waiting == MAIL_CONCURRENCY
        assert sorted(sender.sent) == sorted(addresses[1:])
    finally:
        await news.close()
