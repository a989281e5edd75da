"""The seller center's product pages: a new product from the center's form, the product
editor (title, description, category, options, each SKU's price and stock, all or nothing), a
new variant, archiving. Forms and refusals work as in web/seller_pages.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog import service as catalog
from catalog import variants
from catalog.models import Seller, Shop, Sku
from checkout.shelving import Shelving
from kernel.errors import DomainError, Invalid, NotFound
from people.roles import Duty
from web.cookies import COOKIE
from web.http import status_of
from web.l10n import major_units
from web.pages import not_found_page
from web.schemas import ProductIn, ProductPatch, SkuIn, SkuPatch
from web.seller_pages import (
    FIELD_HINTS,
    Refused,
    field_of,
    form_action,
    money_field,
    page_duty,
    parse_form,
    staff_page,
    whole_field,
)
from web.services import services
from web.templating import page_language, render


@form_action(duty=Duty.CATALOG)
async def create_product(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """A product with one SKU, from the seller center's form."""
    shop_id = whole_field(form, "shop_id")
    currency = form.get("currency", "USD").strip()
    product = parse_form(
        ProductIn,
        {
            "title": form.get("title", ""),
            "description": form.get("description", ""),
            "image_urls": [form["image_url"].strip()] if form.get("image_url") else [],
        },
    )
    sku = parse_form(
        SkuIn,
        {
            "variant": form.get("variant", ""),
            "list_price": money_field(form, "list_price", currency),
            "currency": currency,
            "stock": whole_field(form, "stock"),
        },
    )
    async with services(request).db.session() as session:
        made = await catalog.create_product(session, me, shop_id, product.model_dump())
        await catalog.create_sku(session, me, made.id or 0, sku.model_dump())
    return RedirectResponse("/seller#products", status_code=303)


@page_duty(Duty.READ)
async def product_page(request: Request) -> Response:
    """One product to edit: title, description, category, and each SKU's price and stock."""
    who = await staff_page(request, Duty.READ)
    if isinstance(who, Response):
        return who
    return await _product_page(request, who.seller)


async def _product_page(
    request: Request, me: Seller, *, refused: Refused | None = None, status: int = 200
) -> Response:
    async with services(request).db.session() as session:
        try:
            product = await catalog.owned_product(session, me, request.path_params["product_id"])
        except NotFound:
            return not_found_page(request)
        skus = await catalog.skus_of(session, product.id or 0)
        shop = await session.get(Shop, product.shop_id)
    context = {
        "seller": me,
        "product": product,
        "shop": shop,
        "skus": [(sku, major_units(sku.list_price, sku.currency)) for sku in skus],
        "currency": skus[0].currency if skus else "USD",
        "max_options": variants.MAX_OPTIONS,
        "csrf": services(request).seller_sessions.csrf_token(request.cookies.get(COOKIE, "")),
        "refused": refused or Refused(),
        "error": (refused or Refused()).banner,
        "saved": refused is None and request.query_params.get("saved") == "1",
    }
    return render(request, "seller_product.html", context, status=status)


async def _refused_on_product_page(
    request: Request, me: Seller, form: dict[str, str], err: DomainError
) -> Response:
    refused = Refused.of(request.url.path, form, err, page_language(request))
    return await _product_page(request, me, refused=refused, status=status_of(err))


@form_action(_refused_on_product_page, duty=Duty.CATALOG)
async def edit_product(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """Save the product page: every field is checked before anything is written, and the
    product and its SKUs change together or not at all."""
    product_id: int = request.path_params["product_id"]
    async with services(request).db.session() as session:
        await catalog.owned_product(session, me, product_id)
        skus = await catalog.skus_of(session, product_id)
        typed: dict[str, Any] = {
            name: form.get(name, "") for name in ("title", "description", "category")
        }
        options = _options_typed(form)
        if options is not None:
            typed["options"] = options
        fields = parse_form(ProductPatch, typed).model_dump(exclude_unset=True)
        changes = {sku.id or 0: _sku_changes(form, sku) for sku in skus}
        shelving = Shelving(services(request).holds.shelf)
        for sku_id, sku_changes in changes.items():
            if "stock" in sku_changes:  # units on the shelf come off first when fewer remain
                await shelving.lower_to(session, sku_id, sku_changes["stock"])
        await catalog.edit_product(session, me, product_id, fields, changes)
        await shelving.publish_product(session, product_id)  # prices changed, maybe
    return RedirectResponse(f"/seller/products/{product_id}?saved=1", status_code=303)


def _options_typed(form: dict[str, str]) -> list[dict[str, Any]] | None:
    """The product page's option rows as typed (a name, and values separated by commas), or
    None when the form has no option rows. Empty rows are left out."""
    if not any(f"option-name-{i}" in form for i in range(variants.MAX_OPTIONS)):
        return None
    rows = []
    for i in range(variants.MAX_OPTIONS):
        name = form.get(f"option-name-{i}", "").strip()
        values = [v.strip() for v in form.get(f"option-values-{i}", "").split(",") if v.strip()]
        if name or values:
            rows.append({"name": name, "values": values})
    return rows


@form_action(_refused_on_product_page, duty=Duty.CATALOG)
async def add_sku(request: Request, me: Seller, form: dict[str, str]) -> Response:
    """The product page's "Add a variant": a value of each option (or a name, for a product
    without options), a price, stock and an optional picture."""
    product_id: int = request.path_params["product_id"]
    async with services(request).db.session() as session:
        product = await catalog.owned_product(session, me, product_id)
        skus = await catalog.skus_of(session, product_id)
        currency = skus[0].currency if skus else form.get("currency", "USD").strip()
        named: dict[str, Any] = {"variant": form.get("variant", "")}
        if product.options:
            named = {
                "options": {
                    o["name"]: form.get(f"value-{i}", "") for i, o in enumerate(product.options)
                }
            }
        sku = parse_form(
            SkuIn,
            {
                **named,
                "image_url": form.get("image_url", "").strip(),
                "list_price": money_field(form, "list_price", currency),
                "currency": currency,
                "stock": whole_field(form, "stock", "Stock"),
            },
        )
        made = await catalog.create_sku(session, me, product_id, sku.model_dump())
    return RedirectResponse(f"/seller/products/{product_id}?saved=1#sku-{made.id}", 303)


def _sku_changes(form: dict[str, str], sku: Sku) -> dict[str, Any]:
    """A SKU's price and stock as typed. The stock only when the seller changed it: units
    the order pipeline took while the page was open are not put back by saving a title."""
    price_name, stock_name = f"list_price-{sku.id}", f"stock-{sku.id}"
    typed = {"list_price": money_field(form, price_name, sku.currency)}
    if form.get(stock_name, "").strip() != form.get(f"shown-{stock_name}", "").strip():
        typed["stock"] = whole_field(form, stock_name, "Stock")
    try:
        changes = parse_form(SkuPatch, typed).model_dump(exclude_unset=True)
    except Invalid as err:
        name = field_of(err)
        # The field's hint goes with it (field_hint puts it in the page's language).
        problems = err.details.get("problems")
        hint = FIELD_HINTS.get(name, err.message)
        raise Invalid(hint, code=err.code, field=f"{name}-{sku.id}", problems=problems) from None
    if "stock" in changes:
        # Set only if it still is what the page showed: a sale meanwhile is not undone.
        changes["expected_stock"] = whole_field(form, f"shown-{stock_name}", "Stock")
    return changes


@form_action(duty=Duty.CATALOG)
async def archive_product(request: Request, me: Seller, form: dict[str, str]) -> Response:
    async with services(request).db.session() as session:
        await catalog.archive_product(session, me, request.path_params["product_id"])
        await Shelving(services(request).holds.shelf).publish_product(
            session, request.path_params["product_id"]
        )
    return RedirectResponse("/seller?products=archived#products", status_code=303)


@form_action(duty=Duty.CATALOG)
async def unarchive_product(request: Request, me: Seller, form: dict[str, str]) -> Response:
    async with services(request).db.session() as session:
        await catalog.unarchive_product(session, me, request.path_params["product_id"])
        await Shelving(services(request).holds.shelf).publish_product(
            session, request.path_params["product_id"]
        )
    return RedirectResponse("/seller#products", status_code=303)
