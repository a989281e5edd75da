"""Money and country names in a page's language, from Babel's copy of the Unicode CLDR data.
There is one money formatter: ``format_money`` for the templates, and ``money_format`` hands the
same rules to the pages' scripts (common.js ``money()`` applies them), so a price reads the same
whoever draws it. Amounts are integer minor units (decision 0004); decision 0013 says why."""

from __future__ import annotations

import copy
import datetime
import functools
import re
import unicodedata
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import (
    format_decimal,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)
from babel.numbers import format_percent as format_percent_babel
from babel.units import format_unit

from checkout import deadlines
from checkout.deadlines import DAY_MS, HOUR_MS, MINUTE_MS
from web import i18n

# CLDR territory codes that are not places to ship to: groupings, pseudo-locales, the unknown
# region, CLDR-only sub-areas outside ISO 3166-1, and uninhabited lands.
NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
    | {"AQ", "BV", "HM"}
)
# Where to ship by default when the browser names no region.
DEFAULT_COUNTRY = {"en": "US", "zh": "CN", "ja": "JP", "ar": "AE", "fr": "FR", "es": "ES"}
QUOTED = re.compile(r"'([^']*)'")
# Left-to-right isolate: on a right-to-left page, "US$" after the number otherwise shows as
# "$US" (the "$" is neutral and takes the paragraph's direction). See decision 0013.
LRI, PDI = "\u2066", "\u2069"
LATIN = re.compile(r"[A-Za-z]")


@functools.cache
def locale(lang: str) -> Locale:
    """The Babel locale of one of our languages. Plain ``ar`` writes Latin digits: see 0013."""
    return Locale.parse(lang if lang in i18n.LANGUAGES else i18n.DEFAULT)


# ISO 4217's minor units where they are not 2 (what card networks and payment providers count
# in). CLDR's display digits differ for some (0 for COP, IDR, HUF): stored amounts follow ISO.
ISO_MINOR_DIGITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def minor_digits(currency: str) -> int:
    """How many of an amount's last digits are the fraction: ISO 4217's minor unit (0 for yen,
    3 for dinars, else 2), so what is stored is exactly what is shown."""
    return ISO_MINOR_DIGITS.get(currency, 2)


def major_units(amount: int, currency: str) -> str:
    """Minor units as a price field shows them (4.99; 1000 in yen), the way the seller center's
    ``money_field`` reads them back."""
    digits = minor_digits(currency)
    return f"{amount // 10**digits}.{amount % 10**digits:0{digits}d}" if digits else str(amount)


def format_money(amount: int, currency: str, lang: str) -> str:
    """Integer minor units as a price in the language, e.g. 1990 USD: ``$19.90`` in English,
    ``19,90 $US`` in French."""
    digits = minor_digits(currency)
    pattern = copy.copy(locale(lang).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)  # ISO's minor unit, not CLDR's display digits
    value = Decimal(amount).scaleb(-digits)
    text = str(pattern.apply(value, locale(lang), currency=currency, currency_digits=False))
    symbol = get_currency_symbol(currency, locale(lang))
    wrapped = isolated(symbol, lang)
    # Only a symbol with Latin letters is wrapped, and the rest of the text has none.
    return text if wrapped == symbol else text.replace(symbol, wrapped, 1)


def isolated(symbol: str, lang: str) -> str:
    """The symbol as a right-to-left page must carry it: with Latin letters, kept left to
    right by an isolate, so "US$" reads "US$"; elsewhere as it is."""
    if i18n.direction(lang) == "rtl" and LATIN.search(symbol):
        return f"{LRI}{symbol}{PDI}"
    return symbol


@functools.cache
def money_format(lang: str) -> dict[str, Any]:
    """Babel's rules for ``format_money`` as data for the pages' scripts: the standard currency
    pattern's affixes (``¤`` standing for the symbol), its grouping, the decimal and group
    signs, every symbol that is not the code itself and every precision that is not 2."""
    loc = locale(lang)
    pattern = loc.currency_formats["standard"]
    return {
        "positive": [_unquote(pattern.prefix[0]), _unquote(pattern.suffix[0])],
        "negative": [_unquote(pattern.prefix[1]), _unquote(pattern.suffix[1])],
        "grouping": list(pattern.grouping),
        "min_int": pattern.int_prec[0],
        "decimal": get_decimal_symbol(loc),
        "group": get_group_symbol(loc),
        "symbols": {code: sym for code, sym in loc.currency_symbols.items() if sym != code},
        # common.js wraps a symbol with Latin letters in these (see ``isolated``).
        "isolate": [LRI, PDI] if i18n.direction(lang) == "rtl" else None,
        "digits": ISO_MINOR_DIGITS,
    }


def _unquote(affix: str) -> str:
    # Babel strips a pattern's quotes from the finished text: the same as from the affixes,
    # since no number or currency symbol holds a quote.
    return QUOTED.sub(lambda m: m.group(1) or "'", affix)


@functools.cache
def countries(lang: str) -> tuple[tuple[str, str], ...]:
    """(ISO code, name in the language) for every country, sorted by name. Python has no
    language-aware collation without ICU, so this is an accent-blind order; the page script
    re-sorts with the browser's ``Intl.Collator`` (pinyin in Chinese, gojūon in Japanese)."""
    names = locale(lang).territories
    pairs = [
        (code, name)
        for code, name in names.items()
        if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
    ]
    return tuple(sorted(pairs, key=lambda pair: _fold(pair[1])))


def _fold(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def default_country(lang: str, accept_language: str) -> str:
    """The country the checkout starts on: the browser's region (``ar-EG``), else the
    language's usual one."""
    region = i18n.region_from_accept_language(accept_language)
    known = {code for code, _ in countries(lang)}
    return region if region in known else DEFAULT_COUNTRY.get(lang, "US")


# --- numbers, instants and spans on the seller pages (decision 0047) ------------------------


def format_number(value: int | float, lang: str) -> str:
    return str(format_decimal(value, locale=locale(lang)))


def format_percent(share: float, lang: str) -> str:
    """A share (0.125) as the language writes a percentage, to one decimal: ``12.5%``."""
    return str(format_percent_babel(share, "#,##0.0%", locale=locale(lang)))


def format_moment(ms: int, lang: str) -> str:
    """An epoch-milliseconds instant as the seller center shows it: to the minute, in UTC
    (as "today's sales" is), in the language's short date and time."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return f"{format_datetime(moment, 'short', tzinfo=datetime.UTC, locale=locale(lang))} UTC"


def format_day(ms: int, lang: str) -> str:
    """An epoch-milliseconds instant as its UTC day, in the language's medium date."""
    day = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).date()
    return str(format_date(day, "medium", locale=locale(lang)))


SPAN_UNITS = (("duration-day", DAY_MS), ("duration-hour", HOUR_MS), ("duration-minute", MINUTE_MS))


def format_span(ms: int, lang: str) -> str:
    """A span in its two largest units, rounded down (the sign ignored): English as
    ``deadlines.rough_duration`` says it ("2 d 5 h"), the others in CLDR's short unit names."""
    if lang == i18n.DEFAULT:
        return deadlines.rough_duration(ms)
    left, counted = abs(ms), list[tuple[int, str]]()
    for unit, size in SPAN_UNITS:
        count, left = divmod(left, size)
        if count or counted:
            counted.append((count, unit))
        if len(counted) == 2:
            break
    shown = [format_unit(n, unit, length="short", locale=locale(lang)) for n, unit in counted if n]
    return " ".join(shown) or "< " + format_unit(1, "duration-minute", "short", locale=locale(lang))
