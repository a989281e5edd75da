"""Pure catalog rules: what makes a deal or a stock change acceptable. No I/O here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from catalog.error_codes import CatalogErrorCode
from kernel.errors import Invalid

MAX_DEAL_DURATION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class DealTerms:
    deal_price: int
    quantity: int
    per_buyer_limit: int
    starts_ms: int
    ends_ms: int
    accounts_only: bool = False


def check_deal_terms(terms: DealTerms, *, list_price: int, stock: int) -> None:
    """Raise ``Invalid`` with a precise code for the first rule the terms break. The one check
    of a deal's terms, whoever makes the deal (the API or a room); ``stock`` is the SKU's stock
    not promised to another deal."""
    if terms.deal_price <= 0:
        raise Invalid("The deal price must be positive.", code=CatalogErrorCode.INVALID_PRICE)
    if terms.deal_price >= list_price:
        raise Invalid(
            "The deal price must be below the SKU's list price.",
            code=CatalogErrorCode.DEAL_PRICE_NOT_BELOW_LIST,
            deal_price=terms.deal_price,
            list_price=list_price,
        )
    if terms.quantity < 1:
        raise Invalid("The quantity must be at least 1.", code=CatalogErrorCode.INVALID_QUANTITY)
    if terms.quantity > stock:
        raise Invalid(
            "The deal quantity is more than the SKU has in stock.",
            code=CatalogErrorCode.DEAL_QUANTITY_ABOVE_STOCK,
            quantity=terms.quantity,
            stock=stock,
        )
    if terms.per_buyer_limit < 1:
        raise Invalid(
            "The per-buyer limit must be at least 1.",
            code=CatalogErrorCode.INVALID_LIMIT,
            per_buyer_limit=terms.per_buyer_limit,
        )
    if terms.per_buyer_limit > terms.quantity:
        raise Invalid(
            "The per-buyer limit cannot exceed the deal quantity.",
            code=CatalogErrorCode.LIMIT_ABOVE_QUANTITY,
            per_buyer_limit=terms.per_buyer_limit,
            quantity=terms.quantity,
        )
    if terms.ends_ms <= terms.starts_ms:
        raise Invalid("The deal must end after it starts.", code=CatalogErrorCode.INVALID_WINDOW)
    if terms.ends_ms - terms.starts_ms > MAX_DEAL_DURATION_MS:
        raise Invalid(
            "A deal may run for at most seven days.", code=CatalogErrorCode.INVALID_WINDOW
        )


def handle_for(name: str) -> str:
    """A shop's storefront handle from its name: "Mika's Live Closet" -> "mikas-live-closet".
    Empty when the name has no Latin letters or digits (the caller picks a fallback)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower().replace("'", "")).strip("-")[:40]
