"""The body of ``livecart create-seller``. web/cli.py parses its options, applies the
migrations (they live in web/) and hands it the database URL."""

from __future__ import annotations

from catalog import service
from kernel.db import Database
from people import staff
from people.roles import Role


async def create_seller(
    database_url: str, name: str, email: str, shop_name: str | None, base_url: str
) -> None:
    """Print the new seller's and shop's ids, the owner's API token and the link the owner
    joins the staff by (to sign in with an e-mail and password), each shown this once only."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            seller, shop, token = await service.create_seller(session, name, email, shop_name)
            assert seller.id is not None
            _, code = await staff.invite(session, seller.id, email, Role.OWNER, owner=True)
    finally:
        await db.close()
    print(f"seller {seller.id}, shop {shop.id}\ntoken: {token}")
    print(f"owner's sign-up link (7 days): {base_url.rstrip('/')}/seller/join/{code}")
