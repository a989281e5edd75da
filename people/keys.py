"""Every Redis key the people package uses, in one place.

Each key is read or written alone (no Function spans two), so none needs a hash tag to share a
Redis Cluster slot (decision 0037)."""

from __future__ import annotations

from dataclasses import dataclass

# A seller's sign-in stamp while a change to who may act for it is being committed: long enough
# for the commit, short enough that a node that died before renewing it costs a minute of SQL.
PENDING_STAMP_TTL_S = 60

# A WebAuthn ceremony's challenge: long enough for a person to find their authenticator, short
# enough that a stolen options answer is soon useless. Used once (GETDEL) or gone after this.
CHALLENGE_TTL_S = 300


@dataclass(frozen=True)
class PeopleKeys:
    prefix: str = "lc"

    def passkey_challenge(self, challenge_id: str) -> str:
        """String, JSON: the challenge's bytes, what it is for and for which account; expires
        after ``CHALLENGE_TTL_S``."""
        return f"{self.prefix}:passkey-challenge:{challenge_id}"

    def seller_auth_stamp(self, seller_id: int) -> str:
        """String: a random stamp, new whenever who may act for the seller changes (decision
        0049); "~…" with ``PENDING_STAMP_TTL_S`` while such a change commits. No expiry."""
        return f"{self.prefix}:seller-auth:{seller_id}"
