"""Password rules and hashing.

Hashing is argon2id through pwdlib with OWASP's lower-memory profile (19 MiB, 2 passes, 1 lane):
about 50 ms of one core here, where pwdlib's recommended profile (64 MiB, 3 passes, 4 lanes)
costs about 0.5 s, too much for a sign-in storm at the start of a live on a 2-core node. Hashes
carry their parameters, so raising them later rehashes on the next sign-in (``check``).

Strength: 10 to 128 characters, and zxcvbn (a password-strength estimator with the common
passwords, names and keyboard patterns built in) must score it at least 3 of 4."""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from kernel.errors import Invalid
from people.error_codes import PeopleErrorCode

MIN_LENGTH = 10
MAX_LENGTH = 128
MIN_SCORE = 3
HASHER = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


def check_strength(password: str, *, hints: tuple[str, ...] = ()) -> None:
    """Refuse a password that is too short, too long or easy to guess (``hints``: the e-mail and
    name it must not be built from)."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise Invalid(
            f"A password has {MIN_LENGTH} to {MAX_LENGTH} characters.",
            code=PeopleErrorCode.WEAK_PASSWORD,
            reason="length",
            min=MIN_LENGTH,
            max=MAX_LENGTH,
        )
    verdict = zxcvbn(password, user_inputs=list(hints))
    if verdict["score"] < MIN_SCORE:
        warning = verdict["feedback"]["warning"] or "It would be easy to guess."
        raise Invalid(
            f"Choose a harder password. {warning}",
            code=PeopleErrorCode.WEAK_PASSWORD,
            reason="guessable",
            score=verdict["score"],
        )


async def hash_password(password: str) -> str:
    # A thread: the hash is tens of milliseconds of CPU the event loop must not wait on.
    return await asyncio.to_thread(HASHER.hash, password)


async def check_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Whether it matches, and a new hash when the stored one's parameters are out of date."""
    return await asyncio.to_thread(HASHER.verify_and_update, password, hashed)


# Compared against when no account has the e-mail, so a wrong e-mail takes as long as a wrong
# password and sign-in does not tell which addresses have accounts.
DECOY_HASH = HASHER.hash("no account has this password")
