"""Crash points: the places in a checkout and in the order pipeline where a process dying
changes what must happen next. The code reaches each one (``crash.reach(point)``); in
production ``crash`` is ``NO_CRASH`` and reaching a point does nothing.

The crash tests install crash points that act (decision 0024): tests/crashing.py kills a real
``livecart serve`` or ``worker`` there with SIGKILL; tests/helpers.py's ``CrashAt`` raises in
process. Nothing here reads the environment.
"""

from __future__ import annotations

# Every point, in the order a checkout reaches them; tests/test_crash_points.py kills at each.
POINTS = (
    "checkout.before_charge",  # the attempt is in SQL, the provider not yet called
    "checkout.after_charge",  # the provider approved, the hold is still paying
    "checkout.after_commit",  # the hold is sold and order.paid is in the stream; no outcome
    "checkout.after_outcome",  # the attempt says committed; the buyer has no answer yet
    "checkout.after_refund",  # a lapsed hold's charge was refunded; the attempt says pending
    "pipeline.before_ack",  # the orders are committed in SQL, their entries not acknowledged
)

# Every point of a refund and of a payout (decision 0027), in the order each reaches them, and
# the delivery that earns a creator's commission (decision 0046; earned in the move's own SQL
# transaction, so the one point that changes what comes next is after its commit).
MONEY_POINTS = (
    "delivery.after_commit",  # delivered and its commission earned; the seller has no answer
    "refund.after_grant",  # row pending, order and SKU moved, refund:<id> posted; deal restock due
    "refund.after_restock",  # the deal took the units back; SQL still says due
    "refund.after_provider",  # the provider refunded; the row still says pending
    "refund.after_outcome",  # all recorded; the caller has no answer yet
    "payout.after_request",  # row pending and payout:<id> posted; the provider not yet asked
    "payout.after_provider",  # the provider paid out; the row still says pending
)

# Every point of a move between SQL's free stock and a shop's shelf (decision 0028).
SHELF_POINTS = (
    "shelf.after_intent",  # the move is pending in SQL (a put has counted its units shelved)
    "shelf.after_redis",  # the shelf moved the units; SQL still says pending
)


# The points of an auction's own steps after its close (decision 0031); a win charged to the
# card on file then goes through the checkout's POINTS.
AUCTION_POINTS = (
    "auction.after_award",  # the winner holds the lot; the room's record still says closed
)


class CrashPoints:
    """The hook at every crash point. This one does nothing; the crash tests subclass it."""

    def reach(self, point: str) -> None:
        """The process is at ``point`` (one of ``POINTS``)."""


NO_CRASH = CrashPoints()
