"""What the seller center's staff section shows: members with their roles, invitations not
used yet, and API tokens (never the tokens themselves)."""

from __future__ import annotations

from typing import Any

from catalog.models import Seller
from kernel.db import Database
from people import staff
from people.roles import GRANTABLE


async def staff_view(db: Database, me: Seller) -> dict[str, Any]:
    assert me.id is not None
    async with db.session() as session:
        members = await staff.members_of(session, me.id)
        invitations = await staff.pending_invitations(session, me.id)
        tokens = await staff.tokens_of(session, me.id)
    return {
        "members": members,
        "invitations": invitations,
        "tokens": [t for t in tokens if t.revoked_ms is None],
        "roles": [role.value for role in GRANTABLE],
    }
