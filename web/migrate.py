"""Schema migrations with Alembic, applied by ``livecart migrate`` and on ``livecart serve``."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import InterfaceError, OperationalError

from kernel.db import normalise_url, redacted

# The database cannot be reached or refuses the connection: a refused TLS upgrade, a missing
# CA file, a wrong sslmode, a connection refused. Said in one line, not a traceback.
UNREACHABLE = (OSError, InterfaceError, OperationalError)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("web") / "migrations"))
    # ConfigParser reads % as interpolation: a percent-encoded password (p%40ss) must be doubled.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    try:
        command.upgrade(alembic_config(database_url), "head")
    except UNREACHABLE as err:
        raise SystemExit(
            f"livecart: cannot use the database {redacted(database_url)}: {err}"
        ) from None
