"""Turns settings into running infrastructure: the embedded Valkey when there is no REDIS_URL,
the SQLite default when there is no DATABASE_URL, and migrations applied before serving."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace

from web.embedded import DataDirInUse, EmbeddedValkey
from web.migrate import upgrade
from web.settings import Settings

log = logging.getLogger("livecart")


@contextlib.contextmanager
def runtime(settings: Settings, *, migrate: bool = True) -> Iterator[Settings]:
    settings = settings.with_defaults()
    embedded: EmbeddedValkey | None = None
    if settings.redis_url is None:
        embedded = EmbeddedValkey(settings.data_dir / "valkey")
        try:
            settings = replace(settings, redis_url=embedded.start())
        except DataDirInUse as err:
            raise SystemExit(f"livecart: {err}") from None
        log.info("embedded Valkey at %s (data in %s)", settings.redis_url, embedded.data_dir)
    try:
        if migrate:
            assert settings.database_url is not None
            upgrade(settings.database_url)
        yield settings
    finally:
        if embedded is not None:
            embedded.stop()
