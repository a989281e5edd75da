"""The viewer pages' languages: every catalog says everything English says, with the same
placeholders, and the language is picked as docs/protocol.md ("Pages") says. Pure: no I/O
beyond reading the catalogs."""

from __future__ import annotations

import pytest

from web import i18n


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != "en"])
def test_every_catalog_has_every_string_with_the_same_placeholders(lang: str) -> None:
    english, other = i18n.catalog("en"), i18n.catalog(lang)
    assert list(other) == list(english)
    for key, text in english.items():
        assert set(i18n.PLACEHOLDER.findall(other[key])) == set(i18n.PLACEHOLDER.findall(text)), key
        assert other[key].strip(), key


def test_translations_are_not_english_left_behind() -> None:
    english = i18n.catalog("en")
    for lang in ("zh", "ja", "ar", "fr", "es"):
        same = [k for k, v in i18n.catalog(lang).items() if v == english[k] and k != "home"]
        assert len(same) <= 3, (lang, same)  # a few words are the same in French or Spanish


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ar-EG,ar;q=0.9,en;q=0.8", "ar"),
        ("de-DE,de;q=0.9,fr;q=0.8,en;q=0.5", "fr"),
        ("en;q=0.2, ja;q=0.9", "ja"),
        ("zh-CN", "zh"),
        ("de, it", None),
        ("", None),
        ("es;q=0, fr;q=bogus, en", "en"),
    ],
)
def test_the_browsers_preference_picks_the_best_language_we_have(
    header: str, expected: str | None
) -> None:
    assert i18n.from_accept_language(header) == expected


def test_the_query_beats_the_cookie_beats_the_browser() -> None:
    assert i18n.choose("fr", "ja", "ar") == "fr"
    assert i18n.choose(None, "ja", "ar") == "ja"
    assert i18n.choose("xx", "yy", "ar") == "ar"
    assert i18n.choose(None, None, "") == "en"


def test_arabic_is_right_to_left_and_the_rest_left_to_right() -> None:
    assert [i18n.direction(lang) for lang in i18n.LANGUAGES] == [
        "ltr",
        "ltr",
        "ltr",
        "rtl",
        "ltr",
        "ltr",
    ]


def test_translate_fills_placeholders_and_falls_back_to_english() -> None:
    assert i18n.translate("fr", "order_number", id=12) == i18n.catalog("fr")[
        "order_number"
    ].replace("{id}", "12")
    assert i18n.translate("ja", "no_such_key") == "no_such_key"
