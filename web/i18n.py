"""The viewer-facing pages' languages: one JSON catalog per language in ``web/i18n/``, the
language picked from ``?lang=``, then the ``lc_lang`` cookie the switcher sets, then the
browser's ``Accept-Language``, then English. Arabic is written right to left."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

LANGUAGES = ("en", "zh", "ja", "ar", "fr", "es")
RIGHT_TO_LEFT = frozenset({"ar"})
DEFAULT = "en"
LANG_COOKIE = "lc_lang"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    text = resources.files("web").joinpath(f"i18n/{lang}.json").read_text(encoding="utf-8")
    loaded: dict[str, str] = json.loads(text)
    return loaded


def direction(lang: str) -> str:
    return "rtl" if lang in RIGHT_TO_LEFT else "ltr"


def from_accept_language(header: str) -> str | None:
    """The best of our languages in an ``Accept-Language`` header, by its q-values."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def region_from_accept_language(header: str) -> str | None:
    """The region of the browser's first language that names one (``ar-EG`` -> ``EG``)."""
    for part in header.split(","):
        subtags = part.split(";")[0].strip().replace("_", "-").split("-")
        region = next((s for s in subtags[1:] if len(s) == 2 and s.isalpha()), None)
        if region:
            return region.upper()
    return None


def choose(query: str | None, cookie: str | None, accept_language: str) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return from_accept_language(accept_language) or DEFAULT


def translate(lang: str, key: str, **values: object) -> str:
    text = catalog(lang).get(key) or catalog(DEFAULT).get(key) or key
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)
