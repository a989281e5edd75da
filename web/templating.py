"""Server-rendered pages: one Jinja2 environment over ``web/templates``, security headers on
every page, the language a viewer-facing page is shown in (web/i18n.py), and its prices
(web/l10n.py)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from web import i18n, l10n

# No inline script or style anywhere: page data travels in <script type="application/json">.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' {sockets}; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money_filter
    env.filters["day"] = in_page_language(l10n.format_day)
    env.filters["moment"] = in_page_language(l10n.format_moment)
    env.filters["number"] = in_page_language(l10n.format_number)
    env.filters["percent"] = in_page_language(l10n.format_percent)
    return env


def in_page_language(format_in: Callable[[Any, str], str]) -> Callable[..., str]:
    """A filter that formats its value for the page's language (Babel, web/l10n.py)."""

    @jinja2.pass_context
    def apply(context: jinja2.runtime.Context, value: Any) -> str:
        return format_in(value, context.get("lang", i18n.DEFAULT))

    return apply


# The seller pages parse prices with the same digits the formatter shows.
minor_digits = l10n.minor_digits


def money(amount: int, currency: str, lang: str = i18n.DEFAULT) -> str:
    """Minor units as a price in the language (web/l10n.py: the one formatter)."""
    return l10n.format_money(amount, currency, lang)


@jinja2.pass_context
def money_filter(context: jinja2.runtime.Context, amount: int, currency: str) -> str:
    """``{{ amount|money(currency) }}``: a price in the page's language."""
    return money(amount, currency, context.get("lang", i18n.DEFAULT))


def page_language(request: Request) -> str:
    return i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("accept-language", ""),
    )


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    # A page that does not pick its language (the seller's) is in the visitor's.
    lang = context.get("lang") or page_language(request)
    html = (
        environment()
        .get_template(template)
        .render(
            {
                "lang": lang,
                "dir": i18n.direction(lang),
                "t": functools.partial(i18n.translate, lang),
                "languages": [(code, i18n.catalog(code)["lang_name"]) for code in i18n.LANGUAGES],
                # One leading slash: "//host/x" (a 404 page's own path) is another site's address.
                "request_path": "/" + request.url.path.lstrip("/"),
                "money_format": l10n.money_format(lang),
                **context,
            }
        )
    )
    response = HTMLResponse(html, status_code=status)
    host = request.headers.get("host", "")
    sockets = f"ws://{host} wss://{host}" if HOST.match(host) else ""
    response.headers["Content-Security-Policy"] = CSP.format(sockets=sockets)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if request.query_params.get("lang") == lang:
        response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    return response
