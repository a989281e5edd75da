"""The body of ``livecart create-seller``. web/cli.py parses its options, applies the
migrations (they live in web/) and hands it the database URL."""

from __future__ import annotations

from catalog import service
from kernel.db import Database


async def create_seller(database_url: str, name: str, email: str, shop_name: str | None) -> None:
    """Print the new seller's and shop's ids and the API token, shown this once only."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            seller, shop, token = await service.create_seller(session, name, email, shop_name)
    finally:
        await db.close()
    print(f"seller {seller.id}, shop {shop.id}\ntoken: {token}")
