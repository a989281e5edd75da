"""What each member of a seller's staff may do (decision 0043): a role is a set of duties, and
every seller route and page names the one duty it needs. Pure data, no I/O."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"  # the one who made the shop: everything, and cannot be removed or demoted
    ADMIN = "admin"  # everything the owner does, except touching the owner
    HOST = "host"  # hosts lives: rooms, video, deals, auctions, giveaways
    FULFILMENT = "fulfilment"  # ships orders, answers returns
    FINANCE = "finance"  # refunds, the ledger, payouts


class Duty(StrEnum):
    """What a route or page does, as far as who may do it goes."""

    READ = "read"  # see the shop's products, rooms and deals: every member
    LIVE = "lives"  # rooms, going live, deals, auctions, giveaways, comment sales
    CATALOG = "catalog"  # products, SKUs, stock, promotions, vouchers, shipping fees
    ORDERS = "orders"  # orders, shipping, returns
    MONEY = "money"  # refunds, the ledger, statements, payouts
    STAFF = "staff"  # members, invitations, API tokens


DUTIES: dict[Role, frozenset[Duty]] = {
    Role.OWNER: frozenset(Duty),
    Role.ADMIN: frozenset(Duty),
    Role.HOST: frozenset({Duty.READ, Duty.LIVE}),
    Role.FULFILMENT: frozenset({Duty.READ, Duty.ORDERS}),
    Role.FINANCE: frozenset({Duty.READ, Duty.MONEY}),
}

# The roles an invitation or an API token may carry: there is one owner, made with the seller.
GRANTABLE = tuple(role for role in Role if role is not Role.OWNER)


def may(role: Role, duty: Duty) -> bool:
    return duty in DUTIES[role]
