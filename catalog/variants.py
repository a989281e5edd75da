"""Variants (decision 0028, choice 1): a product's options (size, colour) and each SKU's value of
every option. Pure rules: the service applies them under the product's transaction, and SQL's
unique (product, combination) settles two sellers adding the same combination at once.

A product's options are an ordered list of ``{"name": ..., "values": [...]}``; a SKU's are a
mapping of every option's name to one of its values. The SKU's label ("M / Red") is its values
in the options' order: deals, orders and statements show it as they showed the free-text
variant of a product without options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalog.error_codes import CatalogErrorCode
from kernel.errors import Conflict, Invalid

MAX_OPTIONS = 3
MAX_VALUES = 20
MAX_TEXT = 40  # an option's name or value
SEPARATOR = " / "
FORBIDDEN = ("/", ",")

Options = list[dict[str, Any]]  # [{"name": "Size", "values": ["S", "M"]}, ...]


def _fold(text: str) -> str:
    return text.casefold()


def checked_options(raw: Sequence[Mapping[str, Any]]) -> Options:
    """The options as stored, or ``Invalid`` naming the first rule broken: at most 3 options
    of 1-20 values each; names unique among the options and values unique within their option
    (ignoring case); no text empty, longer than 40 characters or containing "/" or ","."""
    if len(raw) > MAX_OPTIONS:
        raise _invalid(f"A product has at most {MAX_OPTIONS} options.", options=len(raw))
    names: set[str] = set()
    options: Options = []
    for option in raw:
        name = _text(option.get("name"), "An option's name")
        if _fold(name) in names:
            raise _invalid(f"Two options are called {name!r}.", option=name)
        names.add(_fold(name))
        values = list(option.get("values") or [])
        if not 1 <= len(values) <= MAX_VALUES:
            raise _invalid(
                f"Option {name!r} needs 1 to {MAX_VALUES} values.", option=name, values=len(values)
            )
        seen: set[str] = set()
        kept: list[str] = []
        for value in values:
            text = _text(value, f"A value of {name!r}")
            if _fold(text) in seen:
                raise _invalid(f"Option {name!r} lists {text!r} twice.", option=name, value=text)
            seen.add(_fold(text))
            kept.append(text)
        options.append({"name": name, "values": kept})
    return options


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{what} must be non-empty text.")
    text = value.strip()
    # "/" separates values in a SKU's name, "," values in the seller center's option rows.
    if len(text) > MAX_TEXT or any(mark in text for mark in FORBIDDEN):
        raise _invalid(
            f"{what} must be at most {MAX_TEXT} characters, without '/' or ','.", text=text
        )
    return text


def sku_values(options: Options, given: Mapping[str, str]) -> dict[str, str]:
    """A SKU's values, one per option, spelled as the product spells them; ``Invalid`` when
    one is missing, unknown or not among its option's values."""
    by_name = {_fold(o["name"]): o for o in options}
    unknown = sorted(n for n in given if _fold(n) not in by_name)
    if unknown:
        raise _invalid(
            f"The product has no option {unknown[0]!r}.",
            unknown=unknown,
            options=[o["name"] for o in options],
        )
    folded = {_fold(n): v for n, v in given.items()}
    values: dict[str, str] = {}
    for option in options:
        name = option["name"]
        value = folded.get(_fold(name))
        if value is None:
            raise _invalid(f"Choose a value of {name!r}.", option=name, values=option["values"])
        match = next((v for v in option["values"] if _fold(v) == _fold(value.strip())), None)
        if match is None:
            raise _invalid(
                f"{value!r} is not a value of {name!r}.", option=name, values=option["values"]
            )
        values[name] = match
    return values


def label(options: Options, values: Mapping[str, str]) -> str:
    """The SKU's name: its values in the options' order ("M / Red")."""
    return SEPARATOR.join(values[o["name"]] for o in options)


def check_change(old: Options, new: Options, used: Sequence[Mapping[str, str]]) -> None:
    """Options may be replaced while no SKU uses them; once SKUs have values, only new values
    of the same options may be added (each SKU keeps a value of every option)."""
    if not used:
        return
    if not old and new:
        raise Conflict(
            "The product already has SKUs without options: make a new product with options.",
            code=CatalogErrorCode.OPTIONS_IN_USE,
            options=[],
        )
    if [_fold(o["name"]) for o in old] != [_fold(o["name"]) for o in new]:
        raise Conflict(
            "The product's SKUs have values of these options: add values, or make a new "
            "product for other options.",
            code=CatalogErrorCode.OPTIONS_IN_USE,
            options=[o["name"] for o in old],
        )
    for before, after in zip(old, new, strict=True):
        kept = {_fold(v) for v in after["values"]}
        gone = sorted({sku[before["name"]] for sku in used} - set(after["values"]))
        gone = [v for v in gone if _fold(v) not in kept]
        if gone:
            raise Conflict(
                f"SKUs use {gone[0]!r} of {before['name']!r}: keep the value.",
                code=CatalogErrorCode.OPTIONS_IN_USE,
                option=before["name"],
                values=gone,
            )


def _invalid(message: str, **details: Any) -> Invalid:
    return Invalid(message, code=CatalogErrorCode.INVALID_VARIANT, **details)
