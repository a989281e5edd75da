"""The page an invitation mail links to (decision 0043): who invites you and as what, and a
form to join with this e-mail's account (its password) or a new one made here. Joining signs
the browser in to the seller center as that member."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from catalog.models import Seller
from kernel.errors import DomainError
from people import accounts, staff
from people.models import Invitation
from web import i18n
from web.api_accounts import throttle_sign_in
from web.auth import member_tag
from web.http import status_of
from web.seller_pages import (
    LOGIN_CSRF_COOKIE,
    form_fields,
    login_csrf_cookie,
    page_message,
    signed_in_response,
)
from web.services import services
from web.templating import page_language, render


async def join_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    token: str = request.path_params["token"]
    lang = page_language(request)
    async with services(request).db.session() as session:
        try:
            invitation = await staff.open_invitation(session, token)
        except DomainError as err:
            gone: dict[str, object] = {"invitation": None, "error": page_message(err, lang)}
            return render(request, "seller_join.html", gone, status=404)
        seller = await session.get(Seller, invitation.seller_id)
        has_account = await accounts.account_by_email(session, invitation.email) is not None
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(16)
    context = {
        "invitation": invitation,
        "seller": seller,
        "has_account": has_account,
        "csrf": csrf,
        "error": error,
    }
    response = render(request, "seller_join.html", context, status=status)
    login_csrf_cookie(request, response, csrf)
    return response


async def join(request: Request) -> Response:
    form = await form_fields(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "").encode()
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "").encode()):
        expired = i18n.translate(page_language(request), "sc_form_expired")
        return await join_page(request, error=expired, status=403)
    try:
        seller_id, tag = await _join(request, form)
    except DomainError as err:
        error = page_message(err, page_language(request))
        return await join_page(request, error=error, status=status_of(err))
    return signed_in_response(request, seller_id, tag, "/seller")


async def _join(request: Request, form: dict[str, str]) -> tuple[int, str]:
    svc = services(request)
    token: str = request.path_params["token"]
    async with svc.db.session() as session:
        invitation: Invitation = await staff.open_invitation(session, token)
        await throttle_sign_in(svc, request, email=invitation.email)
        password = form.get("password", "")
        if await accounts.account_by_email(session, invitation.email) is not None:
            account = await accounts.sign_in(session, invitation.email, password)
        else:
            name = form.get("display_name", "").strip()[:40] or invitation.email.split("@")[0]
            account = await accounts.sign_up(session, invitation.email, password, name, None)
        member = await staff.join(session, token, account)
    return member.seller_id, member_tag(account)
