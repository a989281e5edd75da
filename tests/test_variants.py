"""Variants (decision 0028): a product's options and a SKU per combination of values, over HTTP
against real SQL (SQLite here, PostgreSQL in CI's storage step), and the pure rules they follow.
Every refusal is a 4xx with its code and leaves the catalog as it was."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from catalog import variants
from catalog.error_codes import CatalogErrorCode
from kernel.errors import Conflict, Invalid
from tests.conftest import SellerAccount
from tests.helpers import LIST_PRICE, assert_error, get_product

SIZE = {"name": "Size", "values": ["S", "M", "L"]}
COLOUR = {"name": "Colour", "values": ["Black", "Sand"]}


async def tee(http: httpx.AsyncClient, seller: SellerAccount, *options: dict[str, Any]) -> int:
    r = await http.post(
        f"/api/shops/{seller.shop.id}/products",
        headers=seller.headers,
        json={"title": "Tee", "options": list(options)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["product"]["options"] == list(options)
    product_id: int = r.json()["product"]["id"]
    return product_id


def add_sku(http: httpx.AsyncClient, seller: SellerAccount, product_id: int, **body: Any) -> Any:
    return http.post(
        f"/api/products/{product_id}/skus",
        headers=seller.headers,
        json={"list_price": LIST_PRICE, "currency": "USD", "stock": 5, **body},
    )


# -- over HTTP --------------------------------------------------------------------------------


@pytest.mark.storage
async def test_a_sku_per_combination_named_by_its_values(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id = await tee(http, seller, SIZE, COLOUR)
    made = []
    for size in ("S", "M"):
        for colour in ("Black", "Sand"):
            r = await add_sku(
                http,
                seller,
                product_id,
                options={"Colour": colour, "Size": size},
                image_url=f"/static/img/tee-{colour.lower()}.svg",
            )
            assert r.status_code == 201, r.text
            made.append(r.json()["sku"])
    # Matched ignoring case, stored as the product spells it; named in the options' order.
    r = await add_sku(http, seller, product_id, options={"size": "l", "COLOUR": "sand"})
    assert r.status_code == 201, r.text
    made.append(r.json()["sku"])
    assert [s["variant"] for s in made] == [
        "S / Black",
        "S / Sand",
        "M / Black",
        "M / Sand",
        "L / Sand",
    ]
    assert made[-1]["options"] == {"Size": "L", "Colour": "Sand"}
    assert made[0]["image_url"] == "/static/img/tee-black.svg"
    assert (await get_product(http, product_id))["skus"] == made


@pytest.mark.storage
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"options": {"Size": "M"}}, 422, "invalid_variant", id="a-value-missing"),
        pytest.param(
            {"options": {"Size": "XL", "Colour": "Sand"}}, 422, "invalid_variant", id="not-a-value"
        ),
        pytest.param(
            {"options": {"Size": "M", "Colour": "Sand", "Fit": "Slim"}},
            422,
            "invalid_variant",
            id="unknown-option",
        ),
        pytest.param(
            {"options": {"Size": "M", "Colour": "Sand"}, "variant": "Medium sand"},
            422,
            "invalid_variant",
            id="free-text-name-too",
        ),
        pytest.param({}, 422, "invalid_variant", id="no-values"),
        pytest.param(
            {"options": {"Size": "S", "Colour": "Black"}}, 409, "variant_exists", id="twin"
        ),
        pytest.param(
            {"options": {"size": "s", "colour": "BLACK"}}, 409, "variant_exists", id="twin-cased"
        ),
        pytest.param({"options": {"Size": 1}}, 422, "invalid_request", id="not-text"),
        pytest.param({"options": ["S"]}, 422, "invalid_request", id="not-a-mapping"),
        pytest.param({"image_url": "javascript:alert(1)"}, 422, "invalid_request", id="bad-image"),
    ],
)
async def test_refused_skus_change_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, body: dict[str, Any], status: int, code: str
) -> None:
    product_id = await tee(http, seller, SIZE, COLOUR)
    first = await add_sku(http, seller, product_id, options={"Size": "S", "Colour": "Black"})
    assert first.status_code == 201, first.text
    before = await get_product(http, product_id)
    error = assert_error(await add_sku(http, seller, product_id, **body), status, code)
    if code == "variant_exists":
        assert error["details"]["sku_id"] == first.json()["sku"]["id"]
    if body.get("options") == {"Size": "M"}:
        assert error["details"] == {"option": "Colour", "values": ["Black", "Sand"]}
    assert await get_product(http, product_id) == before


@pytest.mark.storage
async def test_a_product_without_options_keeps_free_text_names(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id = await tee(http, seller)
    r = await add_sku(http, seller, product_id, variant="One size")
    assert (r.status_code, r.json()["sku"]["variant"]) == (201, "One size"), r.text
    twin = await add_sku(http, seller, product_id, variant="One size")
    assert twin.status_code == 201, twin.text  # free text was never unique; it stays so
    assert_error(
        await add_sku(http, seller, product_id, options={"Size": "M"}), 422, "invalid_variant"
    )
    # Options cannot be put over SKUs that have none.
    assert_error(
        await http.patch(
            f"/api/products/{product_id}", headers=seller.headers, json={"options": [SIZE]}
        ),
        409,
        "options_in_use",
    )


@pytest.mark.storage
async def test_options_change_only_by_adding_values_once_skus_use_them(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id = await tee(http, seller, SIZE)

    async def options(new: list[dict[str, Any]]) -> httpx.Response:
        return await http.patch(
            f"/api/products/{product_id}", headers=seller.headers, json={"options": new}
        )

    # No SKU yet: replaced freely.
    r = await options([SIZE, COLOUR])
    assert (r.status_code, r.json()["product"]["options"]) == (200, [SIZE, COLOUR]), r.text
    sku = (await add_sku(http, seller, product_id, options={"Size": "M", "Colour": "Sand"})).json()
    grown = [{"name": "Size", "values": ["S", "M", "L", "XL"]}, COLOUR]
    assert (await options(grown)).status_code == 200
    for refused in (
        [SIZE],  # an option dropped
        [{"name": "Fit", "values": ["S", "M", "L"]}, COLOUR],  # renamed
        [{"name": "Size", "values": ["S", "L"]}, COLOUR],  # a value SKUs use
        [COLOUR, SIZE],  # reordered: the names change places
    ):
        error = assert_error(await options(refused), 409, "options_in_use")
        assert error["details"]
    for malformed, code in (
        ([{"name": "Size", "values": ["S", "s"]}], "invalid_variant"),
        ([{"name": "Size", "values": ["S"]}, {"name": "size", "values": ["M"]}], "invalid_variant"),
        ([{"name": "Size", "values": ["S/M"]}], "invalid_variant"),
        ([{"name": "Size", "values": []}], "invalid_request"),
        ([{"name": "", "values": ["S"]}], "invalid_request"),
        ([{"name": str(n), "values": ["S"]} for n in range(4)], "invalid_request"),
    ):
        assert_error(await options(malformed), 422, code)
    product = await get_product(http, product_id)
    assert product["options"] == grown
    assert product["skus"][0]["options"] == sku["sku"]["options"]
    # A SKU moves to a free combination, not to a taken one.
    other = await add_sku(http, seller, product_id, options={"Size": "XL", "Colour": "Black"})
    assert other.status_code == 201, other.text
    moved = await http.patch(
        f"/api/skus/{sku['sku']['id']}",
        headers=seller.headers,
        json={"options": {"Size": "L", "Colour": "Black"}},
    )
    assert (moved.status_code, moved.json()["sku"]["variant"]) == (200, "L / Black"), moved.text
    taken = await http.patch(
        f"/api/skus/{sku['sku']['id']}",
        headers=seller.headers,
        json={"options": {"Size": "XL", "Colour": "Black"}},
    )
    assert_error(taken, 409, "variant_exists")
    assert_error(
        await http.patch(
            f"/api/skus/{sku['sku']['id']}", headers=seller.headers, json={"variant": "Big"}
        ),
        422,
        "invalid_variant",
    )
    (kept,) = [
        s for s in (await get_product(http, product_id))["skus"] if s["id"] == sku["sku"]["id"]
    ]
    assert (kept["variant"], kept["stock"]) == ("L / Black", 5)


@pytest.mark.storage
async def test_racing_sellers_add_one_sku_per_combination(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id = await tee(http, seller, SIZE, COLOUR)
    answers = await asyncio.gather(
        *(
            add_sku(http, seller, product_id, options={"Size": "M", "Colour": "Sand"})
            for _ in range(12)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 11, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "variant_exists"
    assert len((await get_product(http, product_id))["skus"]) == 1


# -- the rules --------------------------------------------------------------------------------


def test_options_are_stored_trimmed_and_in_order() -> None:
    raw = [{"name": " Size ", "values": [" S", "M "]}, {"name": "Colour", "values": ["Red"]}]
    assert variants.checked_options(raw) == [
        {"name": "Size", "values": ["S", "M"]},
        {"name": "Colour", "values": ["Red"]},
    ]
    assert variants.checked_options([]) == []


@pytest.mark.parametrize(
    "raw",
    [
        [{"name": n, "values": ["x"]} for n in "abcd"],  # four options
        [{"name": "Size", "values": [str(n) for n in range(21)]}],  # 21 values
        [{"name": "Size", "values": []}],
        [{"name": "Size", "values": ["M", "m"]}],
        [{"name": "Size", "values": ["M"]}, {"name": "SIZE", "values": ["L"]}],
        [{"name": "", "values": ["M"]}],
        [{"name": "Size", "values": [" "]}],
        [{"name": "Size", "values": ["x" * 41]}],
        [{"name": "Size/Fit", "values": ["M"]}],
        [{"name": "Size", "values": [3]}],
    ],
)
def test_options_that_break_a_rule_are_refused(raw: list[dict[str, Any]]) -> None:
    with pytest.raises(Invalid) as refused:
        variants.checked_options(raw)
    assert refused.value.code == CatalogErrorCode.INVALID_VARIANT


def test_a_skus_values_and_label() -> None:
    options = variants.checked_options([SIZE, COLOUR])
    values = variants.sku_values(options, {"colour": " sand", "SIZE": "m"})
    assert values == {"Size": "M", "Colour": "Sand"}
    assert variants.label(options, values) == "M / Sand"
    for given in ({"Size": "M"}, {"Size": "M", "Colour": "Red"}, {"Size": "M", "Fit": "x"}, {}):
        with pytest.raises(Invalid):
            variants.sku_values(options, given)


def test_options_change_rules() -> None:
    old = variants.checked_options([SIZE, COLOUR])
    used = [{"Size": "M", "Colour": "Sand"}]
    more = variants.checked_options([{"name": "Size", "values": ["M", "S", "XL"]}, COLOUR])
    variants.check_change(old, more, used)  # reordered and new values: allowed
    variants.check_change(old, [], [])  # no SKU uses them: anything goes
    for new in ([SIZE], [COLOUR, SIZE], [{"name": "Size", "values": ["S"]}, COLOUR]):
        with pytest.raises(Conflict) as refused:
            variants.check_change(old, variants.checked_options(new), used)
        assert refused.value.code == CatalogErrorCode.OPTIONS_IN_USE
    with pytest.raises(Conflict):
        variants.check_change([], old, [{}])  # SKUs without values


@pytest.mark.storage
async def test_the_longest_names_fit_their_columns(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    # 40 characters that casefold to three each ("ﬃ" is "ffi"), in each of three options.
    options = [{"name": "ﬃ" * 39 + tag, "values": ["ﬃ" * 40, "x"]} for tag in "abc"]
    product_id = await tee(http, seller, *options)
    r = await add_sku(http, seller, product_id, options={o["name"]: "ﬃ" * 40 for o in options})
    assert r.status_code == 201, r.text
    assert r.json()["sku"]["variant"] == " / ".join(["ﬃ" * 40] * 3)
    twin = await add_sku(http, seller, product_id, options={o["name"]: "FFI" * 40 for o in options})
    assert_error(twin, 422, "invalid_request")  # "FFI" x 40 is 120 characters: too long
