"""The seller center's staff forms (decision 0043): invite, withdraw, change a member's role,
remove a member, make and revoke API tokens. Each goes through the same rules as the JSON API
(people/staff.py) and, refused, shows the seller center with the reason."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog.models import Seller
from people import staff
from people.roles import Duty, Role
from web import i18n
from web.api_staff import mail_invitation
from web.schemas import ApiTokenIn, InviteIn, RoleIn
from web.seller_pages import center_with_notice, form_action, parse_form
from web.services import services
from web.templating import page_language

BACK = "/seller#staff"


def say(request: Request, key: str, **values: object) -> str:
    """A notice in the page's language (decision 0047)."""
    return i18n.translate(page_language(request), key, **values)


@form_action(duty=Duty.STAFF)
async def invite(request: Request, me: Seller, form: dict[str, str]) -> Response:
    body = parse_form(InviteIn, {"email": form.get("email", ""), "role": form.get("role", "")})
    assert me.id is not None
    async with services(request).db.session() as session:
        invitation, token = await staff.invite(session, me.id, body.email, Role(body.role))
    if not await mail_invitation(request, me, invitation, token):
        note = say(request, "sc_notice_not_mailed", email=invitation.email)
        return await center_with_notice(request, me, note)
    return RedirectResponse(BACK, status_code=303)


@form_action(duty=Duty.STAFF)
async def withdraw(request: Request, me: Seller, form: dict[str, str]) -> Response:
    assert me.id is not None
    async with services(request).db.session() as session:
        await staff.withdraw_invitation(session, me.id, request.path_params["invitation_id"])
    return RedirectResponse(BACK, status_code=303)


@form_action(duty=Duty.STAFF)
async def set_role(request: Request, me: Seller, form: dict[str, str]) -> Response:
    body = parse_form(RoleIn, {"role": form.get("role", "")})
    assert me.id is not None
    async with services(request).db.session() as session:
        await staff.set_role(
            session,
            services(request).auth_stamps,
            me.id,
            request.path_params["member_id"],
            Role(body.role),
        )
    return RedirectResponse(BACK, status_code=303)


@form_action(duty=Duty.STAFF)
async def remove(request: Request, me: Seller, form: dict[str, str]) -> Response:
    assert me.id is not None
    async with services(request).db.session() as session:
        await staff.remove_member(
            session, services(request).auth_stamps, me.id, request.path_params["member_id"]
        )
    return RedirectResponse(BACK, status_code=303)


@form_action(duty=Duty.STAFF)
async def create_token(request: Request, me: Seller, form: dict[str, str]) -> Response:
    body = parse_form(ApiTokenIn, {"name": form.get("name", ""), "role": form.get("role", "")})
    assert me.id is not None
    async with services(request).db.session() as session:
        row, token = await staff.create_token(session, me.id, body.name, Role(body.role))
    # Shown this once, on this page only: a redirect would have to carry it in the address.
    role = say(request, f"role_{row.role}")
    note = say(request, "sc_notice_new_token", role=role, name=row.name, token=token)
    return await center_with_notice(request, me, note)


@form_action(duty=Duty.STAFF)
async def revoke_token(request: Request, me: Seller, form: dict[str, str]) -> Response:
    assert me.id is not None
    async with services(request).db.session() as session:
        await staff.revoke_token(
            session, services(request).auth_stamps, me.id, request.path_params["token_id"]
        )
    return RedirectResponse(BACK, status_code=303)
