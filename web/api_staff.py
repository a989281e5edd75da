"""A seller's staff over HTTP (decision 0043): who you are on it, its members and their
roles, invitations by e-mail, joining with one, and API tokens scoped to a role."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from catalog.models import Seller
from people import staff
from people.error_codes import PeopleErrorCode
from people.mail import Mail
from people.models import ApiToken, Invitation
from people.roles import DUTIES, Duty, Role
from web import i18n
from web import responses as out
from web.api_accounts import public_url, signed_in_account
from web.auth import acting
from web.http import JSONResponse, parse, read_body
from web.routing import Answer, Api
from web.schemas import ApiTokenIn, InviteIn, JoinIn, RoleIn
from web.services import services
from web.templating import page_language

api = Api()
log = logging.getLogger("livecart.staff")


@api.route(
    "GET",
    "/api/staff/me",
    "Who you act as: the seller, your role and what it may do",
    auth="seller",
    duty=Duty.READ,
    tag="staff",
    ok={200: out.StaffMe},
)
async def me(request: Request) -> Response:
    who = await acting(request)
    duties = sorted(duty.value for duty in DUTIES[who.role])
    body = {"seller_id": who.seller.id, "seller_name": who.seller.name, "role": who.role}
    return JSONResponse({**body, "duties": duties})


@api.route(
    "GET",
    "/api/staff",
    "The members of your staff and the invitations not used yet",
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={200: out.StaffList},
)
async def list_staff(request: Request) -> Response:
    seller_id = await _seller_id(request)
    async with services(request).db.session() as session:
        members = await staff.members_of(session, seller_id)
        invitations = await staff.pending_invitations(session, seller_id)
    return JSONResponse(
        {
            "members": [
                {
                    "id": member.id,
                    "account_id": member.account_id,
                    "email": account.email,
                    "display_name": account.display_name,
                    "role": member.role,
                    "created_ms": member.created_ms,
                }
                for member, account in members
            ],
            "invitations": [_invitation_json(i) for i in invitations],
        }
    )


@api.route(
    "POST",
    "/api/staff/invitations",
    "Invite someone by e-mail to join your staff with a role; the mail carries the link",
    body=InviteIn,
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={201: out.NewInvitation},
    errors=(PeopleErrorCode.INVALID_EMAIL,),
)
async def invite(request: Request) -> Response:
    svc = services(request)
    who = await acting(request)
    body = parse(InviteIn, await read_body(request))
    assert who.seller.id is not None
    async with svc.db.session() as session:
        invitation, token = await staff.invite(session, who.seller.id, body.email, Role(body.role))
    mailed = await mail_invitation(request, who.seller, invitation, token)
    return JSONResponse({**_invitation_json(invitation), "mailed": mailed}, status_code=201)


async def mail_invitation(
    request: Request, seller: Seller, invitation: Invitation, token: str
) -> bool:
    svc = services(request)
    link = f"{public_url(svc, request)}/seller/join/{token}"
    # The invitee has no account language yet: the inviting page's (decision 0047).
    lang = page_language(request)
    role = i18n.translate(lang, f"role_{invitation.role}")
    mail = Mail(
        to=invitation.email,
        subject=i18n.translate(lang, "mail_invite_subject", shop=seller.name),
        text=i18n.translate(lang, "mail_invite_body", shop=seller.name, role=role, link=link),
    )
    try:
        await svc.mail.send(mail)
    except Exception:
        log.exception("an invitation could not be mailed")
        return False
    return True


@api.route(
    "DELETE",
    "/api/staff/invitations/{invitation_id:id}",
    "Withdraw an invitation not used yet: its link stops working",
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={204: Answer(description="Withdrawn")},
    errors=(PeopleErrorCode.INVITATION_INVALID,),
)
async def withdraw(request: Request) -> Response:
    seller_id = await _seller_id(request)
    async with services(request).db.session() as session:
        await staff.withdraw_invitation(session, seller_id, request.path_params["invitation_id"])
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/staff/join",
    "Join a seller's staff with an invitation mailed to your account's e-mail",
    body=JoinIn,
    auth="account",
    tag="staff",
    ok={201: out.Joined},
    errors=(
        PeopleErrorCode.INVITATION_INVALID,
        PeopleErrorCode.INVITATION_EMAIL_MISMATCH,
        PeopleErrorCode.ALREADY_MEMBER,
    ),
)
async def join(request: Request) -> Response:
    svc = services(request)
    body = parse(JoinIn, await read_body(request))
    account = await signed_in_account(request, svc)
    async with svc.db.session() as session:
        member = await staff.join(session, body.invitation, account)
    answer = {"seller_id": member.seller_id, "member_id": member.id, "role": member.role}
    return JSONResponse(answer, status_code=201)


@api.route(
    "PUT",
    "/api/staff/members/{member_id:id}",
    "Give a member another role (not the owner, and nobody becomes owner)",
    body=RoleIn,
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={204: Answer(description="Changed; it applies to their next request")},
    errors=(PeopleErrorCode.MEMBER_NOT_FOUND, PeopleErrorCode.OWNER_FIXED),
)
async def set_role(request: Request) -> Response:
    seller_id = await _seller_id(request)
    body = parse(RoleIn, await read_body(request))
    async with services(request).db.session() as session:
        await staff.set_role(
            session,
            services(request).auth_stamps,
            seller_id,
            request.path_params["member_id"],
            Role(body.role),
        )
    return Response(status_code=204)


@api.route(
    "DELETE",
    "/api/staff/members/{member_id:id}",
    "Remove a member from your staff (not the owner): their page sessions end at once",
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={204: Answer(description="Removed")},
    errors=(PeopleErrorCode.MEMBER_NOT_FOUND, PeopleErrorCode.OWNER_FIXED),
)
async def remove(request: Request) -> Response:
    seller_id = await _seller_id(request)
    async with services(request).db.session() as session:
        await staff.remove_member(
            session, services(request).auth_stamps, seller_id, request.path_params["member_id"]
        )
    return Response(status_code=204)


@api.route(
    "GET",
    "/api/staff/tokens",
    "Your seller's API tokens for scripts (never the tokens themselves)",
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={200: out.ApiTokenList},
)
async def list_tokens(request: Request) -> Response:
    seller_id = await _seller_id(request)
    async with services(request).db.session() as session:
        tokens = await staff.tokens_of(session, seller_id)
    return JSONResponse({"tokens": [_token_json(t) for t in tokens]})


@api.route(
    "POST",
    "/api/staff/tokens",
    "A new API token that acts with a role; the answer shows it this once",
    body=ApiTokenIn,
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={201: out.NewApiToken},
    errors=(PeopleErrorCode.TOO_MANY_TOKENS,),
)
async def create_token(request: Request) -> Response:
    seller_id = await _seller_id(request)
    body = parse(ApiTokenIn, await read_body(request))
    async with services(request).db.session() as session:
        row, token = await staff.create_token(session, seller_id, body.name, Role(body.role))
    return JSONResponse({**_token_json(row), "token": token}, status_code=201)


@api.route(
    "DELETE",
    "/api/staff/tokens/{token_id:id}",
    "Revoke an API token: it stops working at once, and so do pages signed in with it",
    auth="seller",
    duty=Duty.STAFF,
    tag="staff",
    ok={204: Answer(description="Revoked")},
    errors=(PeopleErrorCode.TOKEN_NOT_FOUND,),
)
async def revoke_token(request: Request) -> Response:
    seller_id = await _seller_id(request)
    async with services(request).db.session() as session:
        await staff.revoke_token(
            session, services(request).auth_stamps, seller_id, request.path_params["token_id"]
        )
    return Response(status_code=204)


async def _seller_id(request: Request) -> int:
    who = await acting(request)
    assert who.seller.id is not None
    return who.seller.id


def _invitation_json(invitation: Invitation) -> dict[str, object]:
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": invitation.role,
        "expires_ms": invitation.expires_ms,
    }


def _token_json(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "created_ms": token.created_ms,
        "revoked_ms": token.revoked_ms,
    }
