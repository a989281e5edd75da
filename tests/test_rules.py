"""Pure rules: deal terms and order transitions, no servers needed."""

from __future__ import annotations

import pytest

from catalog.errors import Conflict, Invalid, NotFound
from catalog.rules import DealTerms, check_deal_terms
from checkout.orders import ACTIONS, TRANSITIONS, OrderStatus, next_status


def terms(**overrides: int) -> DealTerms:
    base = {
        "deal_price": 500,
        "quantity": 10,
        "per_buyer_limit": 2,
        "starts_ms": 0,
        "ends_ms": 60_000,
    }
    return DealTerms(**{**base, **overrides})


def test_acceptable_terms_pass() -> None:
    check_deal_terms(terms(), list_price=1000, stock=10)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"deal_price": 1000}, "deal_price_not_below_list"),
        ({"deal_price": 1500}, "deal_price_not_below_list"),
        ({"deal_price": 0}, "invalid_price"),
        ({"quantity": 11}, "deal_quantity_above_stock"),
        ({"per_buyer_limit": 11}, "limit_above_quantity"),
        ({"ends_ms": 0}, "invalid_window"),
        ({"ends_ms": 8 * 24 * 3600 * 1000}, "invalid_window"),
    ],
)
def test_bad_terms_are_refused_with_a_code(overrides: dict[str, int], code: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_deal_terms(terms(**overrides), list_price=1000, stock=10)
    assert caught.value.code == code


def test_happy_path_of_an_order() -> None:
    status = OrderStatus.PAID
    for action in ["confirm", "ship", "deliver", "complete"]:
        status = next_status(status, action)
    assert status is OrderStatus.COMPLETED


def test_every_allowed_transition_is_reachable_by_its_action() -> None:
    for current, targets in TRANSITIONS.items():
        for target in targets:
            action = next(a for a, t in ACTIONS.items() if t is target)
            assert next_status(current, action) is target


def test_terminal_states_refuse_everything() -> None:
    for terminal in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        for action in ACTIONS:
            with pytest.raises(Conflict) as caught:
                next_status(terminal, action)
            assert caught.value.code == "invalid_transition"


def test_shipping_an_unconfirmed_order_names_what_is_allowed() -> None:
    with pytest.raises(Conflict) as caught:
        next_status(OrderStatus.PAID, "ship")
    assert caught.value.details["allowed"] == ["cancel", "confirm", "refund"]


def test_unknown_action() -> None:
    with pytest.raises(NotFound):
        next_status(OrderStatus.PAID, "teleport")
