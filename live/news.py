"""Telling followers a room went live (decision 0045): the notifications are written by the
request that took the room live (live/follows.py), the mails are sent here, in the background,
so going live never waits on a mail server.

At most ``MAIL_CONCURRENCY`` mails are in flight per node; each is tried once, and one that
fails is logged and dropped (the notification in the page is still there). Closing the node
cancels the mails not sent yet: they are not sent by another node either."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence

from kernel.db import Database
from live import follows
from people.mail import Mail, MailSender

log = logging.getLogger("livecart.news")

MAIL_CONCURRENCY = 8


# A go-live mail for one account, linking to the room under the given site address. The
# composition root gives one that writes it in the account's language (web/mails.py).
Compose = Callable[[follows.Told, str], Mail]


class LiveNews:
    def __init__(self, db: Database, mail: MailSender, compose: Compose | None = None) -> None:
        self.db = db
        self.mail = mail
        self.compose = compose or mail_of
        self._sending: set[asyncio.Task[None]] = set()

    async def room_went_live(self, room_id: int, site_url: str) -> int:
        """Tell the room's followers, unless another request did: how many this call told.
        ``site_url``: where the mail's link to the room points."""
        try:
            async with self.db.session() as session:
                told = await follows.tell_followers(session, room_id)
        except Exception:
            # The room is live whatever happened here, and the claim rolled back with the
            # notifications: the room's next start (a video, Go live again) tells them.
            log.exception("telling room %d's followers failed", room_id)
            return 0
        if told:
            task = asyncio.create_task(self._send_all(told, site_url.rstrip("/")))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return len(told)

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send_all(self, told: Sequence[follows.Told], site_url: str) -> None:
        mails = iter([self.compose(one, site_url) for one in told])
        workers = min(MAIL_CONCURRENCY, len(told))
        await asyncio.gather(*(self._send_each(mails) for _ in range(workers)))

    async def _send_each(self, mails: Iterator[Mail]) -> None:
        for mail in mails:  # the workers share the one iterator: each mail is taken once
            try:
                await self.mail.send(mail)
            except Exception:
                log.exception("a go-live mail to %s failed; not retried", mail.to)


def mail_of(one: follows.Told, site_url: str) -> Mail:
    """The mail in English (the composition root's is in the account's language)."""
    link = f"{site_url}/live/{one.room_id}"
    return Mail(
        to=one.email,
        subject=f"{one.seller_name} is live: {one.title}",
        text=(
            f"Hello {one.display_name},\n\n{one.seller_name} just went live: {one.title}\n\n"
            f"Watch now:\n\n{link}\n\nYou get this mail because you follow "
            f"{one.seller_name} or asked to be reminded of this room.\n"
        ),
    )
