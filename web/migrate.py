"""Schema migrations with Alembic, applied by ``livecart migrate`` and on ``livecart serve``."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config

from catalog.db import normalise_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("web") / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url))
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")
