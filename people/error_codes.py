"""Refusals about accounts: signing up, signing in, passwords, their reset, saved addresses."""

from __future__ import annotations

from kernel.errors import ErrorCode


class PeopleErrorCode(ErrorCode):
    """Refusals about who someone is: an account's e-mail, password and reset, and the
    addresses it keeps."""

    EMAIL_TAKEN = "email_taken"
    INVALID_EMAIL = "invalid_email"
    WEAK_PASSWORD = "weak_password"
    WRONG_PASSWORD = "wrong_password"  # or no account with that e-mail: never told apart
    GUEST_CLAIMED = "guest_claimed"  # the guest session signing up already belongs to an account
    RESET_INVALID = "reset_invalid"  # a reset link that is forged, used or too old
    TOO_MANY_ADDRESSES = "too_many_addresses"  # an account keeps at most ten
    ADDRESS_NOT_FOUND = "address_not_found"  # or another account's: never told apart
