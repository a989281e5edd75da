"""Refusals about accounts (signing up, signing in, passwords and their reset, saved
addresses, passkeys) and about a seller's staff (roles, invitations, API tokens)."""

from __future__ import annotations

from kernel.errors import ErrorCode


class PeopleErrorCode(ErrorCode):
    """Refusals about who someone is: an account's e-mail, password and reset, the addresses
    it keeps and its passkeys; and a seller's staff."""

    EMAIL_TAKEN = "email_taken"
    INVALID_EMAIL = "invalid_email"
    WEAK_PASSWORD = "weak_password"
    WRONG_PASSWORD = "wrong_password"  # or no account with that e-mail: never told apart
    GUEST_CLAIMED = "guest_claimed"  # the guest session signing up already belongs to an account
    RESET_INVALID = "reset_invalid"  # a reset link that is forged, used or too old
    # A seller's staff (decision 0043)
    ROLE_FORBIDDEN = "role_forbidden"  # a member or token whose role may not do this
    ALREADY_MEMBER = "already_member"
    OWNER_FIXED = "owner_fixed"  # the owner's role cannot change; nobody else becomes owner
    MEMBER_NOT_FOUND = "member_not_found"
    TOKEN_NOT_FOUND = "token_not_found"
    TOO_MANY_TOKENS = "too_many_tokens"
    INVITATION_INVALID = "invitation_invalid"  # forged, used, withdrawn or too old
    INVITATION_EMAIL_MISMATCH = "invitation_email_mismatch"
    NOT_ON_STAFF = "not_on_staff"  # a seller sign-in by an account on no seller's staff
    TOO_MANY_ADDRESSES = "too_many_addresses"  # an account keeps at most ten
    ADDRESS_NOT_FOUND = "address_not_found"  # or another account's: never told apart
    # Passkeys (WebAuthn). A challenge is unknown, used already or older than 5 minutes.
    PASSKEY_CHALLENGE_INVALID = "passkey_challenge_invalid"
    PASSKEY_NOT_VERIFIED = "passkey_not_verified"  # a registration the authenticator did not sign
    PASSKEY_EXISTS = "passkey_exists"  # that credential is registered already
    PASSKEY_NOT_FOUND = "passkey_not_found"  # no passkey of yours has that id
    PASSKEY_UNKNOWN = "passkey_unknown"  # sign-in with a credential no account has (deleted?)
    PASSKEY_REJECTED = "passkey_rejected"  # a sign-in response that does not verify
    PASSKEY_SIGN_COUNT = "passkey_sign_count"  # the counter did not go up: a cloned authenticator?
    PASSKEYS_UNAVAILABLE = "passkeys_unavailable"  # the site is at an IP address, not a name
