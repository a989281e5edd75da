"""Comment-to-buy (decision 0033): reading a chat line as a claim on the pinned product. Pure:
no I/O. "SOLD", "sold m 2", "buy Red / M 3": the keyword first (any of the room's, any case),
then optionally the variant, then optionally the quantity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kernel.errors import Conflict, Invalid
from live.error_codes import LiveErrorCode

MAX_KEYWORDS = 6
MAX_KEYWORD_CHARS = 20
MAX_CLAIM_QTY = 10


@dataclass(frozen=True)
class Claim:
    sku_id: int
    qty: int


def check_keywords(keywords: Sequence[str]) -> list[str]:
    """The room's keywords, trimmed: 1-6 of them, each one word of 1-20 characters."""
    cleaned = [k.strip() for k in keywords]
    if not 1 <= len(cleaned) <= MAX_KEYWORDS or any(
        not k or len(k) > MAX_KEYWORD_CHARS or len(k.split()) != 1 for k in cleaned
    ):
        raise Invalid(
            f"Give 1-{MAX_KEYWORDS} keywords, each one word of 1-{MAX_KEYWORD_CHARS} characters.",
            code=LiveErrorCode.INVALID_KEYWORDS,
        )
    return cleaned


def is_claim(text: str, keywords: Sequence[str]) -> bool:
    """Does the line start with one of the keywords (a whole word, any case)?"""
    words = text.split()
    return bool(words) and words[0].casefold() in {k.casefold() for k in keywords}


def parse_claim(text: str, pinned: dict[str, Any] | None) -> Claim:
    """The claim a keyword line makes on the pinned product (``is_claim`` said it is one), or
    the refusal the viewer is told privately."""
    if pinned is None:
        raise Conflict("Nothing is pinned to claim.", code=LiveErrorCode.NOTHING_PINNED)
    words = text.split()[1:]
    qty = 1
    if words and words[-1].isdigit():
        qty = int(words.pop())
        if not 1 <= qty <= MAX_CLAIM_QTY:
            raise Conflict(
                f"Claim 1-{MAX_CLAIM_QTY} units.",
                code=LiveErrorCode.INVALID_CLAIM,
                max_qty=MAX_CLAIM_QTY,
            )
    skus: list[dict[str, Any]] = pinned["skus"]
    variants = [s["variant"] for s in skus]
    if not words:
        if len(skus) == 1:
            return Claim(skus[0]["sku_id"], qty)
        raise Conflict(
            "Say which one: the keyword, then the variant.",
            code=LiveErrorCode.VARIANT_REQUIRED,
            variants=variants,
        )
    said = " ".join(words).casefold()
    exact = [s for s in skus if s["variant"].casefold() == said]
    by_value = [
        s for s in skus if said in {str(v).casefold() for v in (s.get("options") or {}).values()}
    ]
    for found in (exact, by_value):
        if len(found) == 1:
            return Claim(found[0]["sku_id"], qty)
        if len(found) > 1:
            raise Conflict(
                "Several variants match: say the whole variant.",
                code=LiveErrorCode.VARIANT_REQUIRED,
                variants=[s["variant"] for s in found],
            )
    raise Conflict(
        "No such variant of the pinned product.",
        code=LiveErrorCode.UNKNOWN_VARIANT,
        variants=variants,
    )
