"""The one typed settings object. Each setting is declared once, below: its type, default,
environment variable and one line saying what it does; everything else reads it from there,
docs/configuration.md and ``livecart serve --help`` included (web/settings_docs.py).

With no ``REDIS_URL`` livecart runs a private Valkey under the data directory; with no
``DATABASE_URL`` it keeps a SQLite file there. A value that cannot be read stops startup with
one line naming its variable.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kernel.redis_client import check_url

Env = Mapping[str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class Reader:
    """How a variable is read: ``parse(env, name, default)``, where an unset or empty variable
    gives the default. ``kind`` says what the variable takes, for the docs."""

    kind: str
    parse: Callable[[Env, str, Any], Any]


@dataclass(frozen=True)
class Variable:
    """Where a setting comes from and what it means, as declared."""

    name: str
    doc: str
    reader: Reader | None  # None: the reader of the setting's type (BY_TYPE)
    shown: str | None  # the default as the docs say it, where its value says too little


def setting(
    default: T, env: str, doc: str, read: Reader | None = None, shown: str | None = None
) -> T:
    """Declare a setting: its default, its environment variable and one line of doc."""
    return field(default=default, metadata={"variable": Variable(env, doc, read, shown)})


# -- readers ---------------------------------------------------------------------------------


def _int(env: Env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None


def _float(env: Env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None


def _bool(env: Env, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _maybe_bool(env: Env, name: str, default: bool | None) -> bool | None:
    """Unset: ``default`` (None: decided per request); set: on or off."""
    return _bool(env, name, False) if env.get(name) else default


def _text(env: Env, name: str, default: str | None) -> str | None:
    return env.get(name) or default


def _path(env: Env, name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw) if raw else default


def _list(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())
    return items or default


def _origins(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(origin.rstrip("/") for origin in _list(env, name, default))


def _header_text(env: Env, name: str, default: str | None) -> str | None:
    """Text sent in HTTP headers (the ICE servers and TURN credentials in WHIP/WHEP ``Link``
    headers): printable ASCII, or every answer would fail."""
    raw = env.get(name) or default
    if raw is not None and not (raw.isascii() and raw.isprintable()):
        raise SystemExit(f"{name} must be printable ASCII (it is sent in an HTTP header)")
    return raw


def _header_list(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    _header_text(env, name, None)  # refuses what a header cannot carry
    return _list(env, name, default)


def _secret(env: Env, name: str, default: str | None) -> str | None:
    """A secret given as ``name``, or read from the file ``name_FILE`` names (a mounted Docker or
    Kubernetes secret, kept out of the environment and of ``ps``), surrounding whitespace
    stripped. Never both."""
    path = env.get(f"{name}_FILE") or None
    if path is None:
        return env.get(name) or default
    if env.get(name):
        raise SystemExit(f"Set {name} or {name}_FILE, not both.")
    try:
        value = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"{name}_FILE: cannot read {path}: {err}") from None
    if not value:
        raise SystemExit(f"{name}_FILE: {path} is empty.")
    return value


def _secret_list(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Secrets separated by commas or line breaks (one a line in a ``_FILE``)."""
    raw = _secret(env, name, None) or ""
    return tuple(item.strip() for item in re.split(r"[,\n]", raw) if item.strip()) or default


def _redis_url(env: Env, name: str, default: str | None) -> str | None:
    """The URL as redis-py reads it (user, password, ``rediss://`` and TLS query parameters
    included), refused at startup rather than at the first request."""
    url = _secret(env, name, default)
    if url is not None:
        try:
            check_url(url)
        except ValueError as err:  # the message never repeats the URL and its password
            raise SystemExit(f"{name}: {err}") from None
    return url


def _mail_url(env: Env, name: str, default: str | None) -> str | None:
    """``smtp://`` or ``smtps://`` with a host, refused at startup rather than at the first
    mail (a password reset that silently never leaves)."""
    url = _secret(env, name, default)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SystemExit(f"{name} must be smtp://[user:password@]host[:port] or smtps://…")
    return url


def _not_negative(env: Env, name: str, default: float) -> float:
    value = _float(env, name, default)
    if value < 0:
        raise SystemExit(f"{name} must be 0 (off) or more, not {value}")
    return value


def _count(env: Env, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SystemExit(f"{name} must be 0 (off) or more, not {value}")
    return value


def _proxies(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """IP addresses and networks (CIDR) whose ``X-Forwarded-For`` is believed; ``none``: no
    proxy's."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if raw.lower() == "none":
        return ()
    proxies = []
    for proxy in _list(env, name, ()):
        try:
            # Networks in their canonical form (10.1.2.3/8 -> 10.0.0.0/8): uvicorn, which
            # applies the list, would take any other form for a name and trust nobody by it.
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            # "*" too: trusting every peer would let any client name its own address.
            raise SystemExit(f"{name}: {proxy!r} is not an IP address or network") from None
        proxies.append(str(network) if "/" in proxy else proxy)
    return tuple(proxies)


def choice(*choices: str) -> Reader:
    """One of ``choices``, case-insensitive."""

    def parse(env: Env, name: str, default: str) -> str:
        raw = (env.get(name) or default).strip().lower()
        if raw not in choices:
            raise SystemExit(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw

    return Reader(" or ".join(f"`{c}`" for c in choices), parse)


WHOLE = Reader("whole number", _int)
NUMBER = Reader("number", _float)
SWITCH = Reader("`1` or `0`", _bool)
TEXT = Reader("text", _text)
PATH = Reader("path", _path)
LIST = Reader("comma-separated list", _list)
BY_TYPE: dict[object, Reader] = {
    int: WHOLE,
    float: NUMBER,
    bool: SWITCH,
    str: TEXT,
    Path: PATH,
    tuple[str, ...]: LIST,
}
COUNT = Reader("whole number, 0 or more", _count)
NOT_NEGATIVE = Reader("number, 0 or more", _not_negative)
MAYBE_SWITCH = Reader("`1` or `0`", _maybe_bool)
SECRET = Reader("text, or a file named by `…_FILE`", _secret)
SECRET_LIST = Reader("comma- or line-separated list, or a file named by `…_FILE`", _secret_list)
REDIS_URL = Reader("URL, or a file named by `…_FILE`", _redis_url)
MAIL_URL = Reader("`smtp://` or `smtps://` URL, or a file named by `…_FILE`", _mail_url)
HEADER_TEXT = Reader("printable ASCII", _header_text)
HEADER_LIST = Reader("comma-separated list, printable ASCII", _header_list)
ORIGINS = Reader("comma-separated list", _origins)
PROXIES = Reader("comma-separated list, or `none`", _proxies)

LOOPBACK_PROXIES = ("127.0.0.1", "::1")
LOG_FORMATS = ("text", "json")
DAY_S = 24 * 3600


# -- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every setting livecart reads, in the order docs/configuration.md lists them."""

    # Where data lives, where to listen, what signs.
    data_dir: Path = setting(
        Path(".livecart"),
        "LIVECART_DATA_DIR",
        "where the embedded Valkey and SQLite keep their files",
    )
    redis_url: str | None = setting(
        None,
        "REDIS_URL",
        "Redis or Valkey (7+); user and password, `rediss://` and TLS options in the URL; "
        "`redis+cluster://host:port,host:port` for a cluster (README: Production connections)",
        REDIS_URL,
        shown="a private Valkey under the data dir",
    )
    redis_wait_replicas: int = setting(
        0,
        "LIVECART_REDIS_WAIT_REPLICAS",
        "replicas that must have each hold, sale or bid before anyone is told of it (`WAIT` "
        "after every Redis Function call; docs/operations.md); `0`: none, Redis's asynchronous "
        "replication may lose the last writes in a failover",
        COUNT,
    )
    redis_wait_ms: int = setting(
        100,
        "LIVECART_REDIS_WAIT_MS",
        "how long a Function call waits for those replicas before its caller is told to retry "
        "(503)",
        COUNT,
    )
    database_url: str | None = setting(
        None,
        "DATABASE_URL",
        "SQLite, or PostgreSQL: `postgresql://user@host/db` (install `.[postgres]`), with "
        "libpq's `sslmode`, `sslrootcert`, ... (README: Production connections)",
        SECRET,
        shown="`sqlite:///<data dir>/livecart.db`",
    )
    redis_prefix: str = setting("lc", "LIVECART_REDIS_PREFIX", "prefix of every Redis key")
    host: str = setting("127.0.0.1", "LIVECART_HOST", "address to listen on (as `--host`)")
    port: int = setting(8000, "LIVECART_PORT", "port to listen on (as `--port`)")
    secret_key: str | None = setting(
        None,
        "LIVECART_SECRET_KEY",
        "signs guest session tokens, seller sign-in cookies, CSRF tokens and studio tickets",
        SECRET,
        shown="generated once into the data dir",
    )
    previous_secret_keys: tuple[str, ...] = setting(
        (),
        "LIVECART_PREVIOUS_SECRET_KEYS",
        "keys that signed before the current one: what they signed stays valid, nothing new "
        "is signed with them (README: Rotating the secret key)",
        SECRET_LIST,
    )
    publish_token: str | None = setting(
        None,
        "LIVECART_TOKEN",
        "`livecart publish`'s seller token when `--token` is not given",
        TEXT,
    )
    session_max_age_s: int = setting(
        30 * DAY_S,
        "LIVECART_SESSION_MAX_AGE_S",
        "a guest session token is valid this long",
        shown="`2592000` (30 days)",
    )
    seller_session_max_age_s: int = setting(
        7 * DAY_S,
        "LIVECART_SELLER_SESSION_MAX_AGE_S",
        "a seller signed in on the pages stays signed in this long",
        shown="`604800` (7 days)",
    )
    cookie_secure: bool | None = setting(
        None,
        "LIVECART_COOKIE_SECURE",
        "`1`: the seller sign-in cookie is sent over HTTPS only; `0`: never marked Secure",
        MAYBE_SWITCH,
        shown="when the request came over HTTPS",
    )
    # Checkout.
    hold_ttl_s: int = setting(120, "LIVECART_HOLD_TTL_S", "how long a hold lasts")
    pay_ttl_s: int = setting(
        120, "LIVECART_PAY_TTL_S", "how long after a payment begins the hold is kept at least"
    )
    checkout_lease_s: float = setting(
        5.0,
        "LIVECART_CHECKOUT_LEASE_S",
        "a checkout's claim on its Idempotency-Key, renewed every third of it while it runs: "
        "a retry after a crashed request waits at most this long",
    )
    reconcile_interval_s: float = setting(
        5.0,
        "LIVECART_RECONCILE_INTERVAL_S",
        "how often payment attempts whose request died are settled: committed if the hold "
        "still waits, refunded if not (decision 0017); also once at start-up",
    )
    sweep_interval_ms: int = setting(
        1000,
        "LIVECART_SWEEP_INTERVAL_MS",
        "how often lapsed holds are swept, deal clocks ticked and abandoned rooms looked for",
    )
    payment_delay_ms: int = setting(
        0,
        "LIVECART_PAYMENT_DELAY_MS",
        "the sandbox payment provider's latency, as a real provider's would be",
    )
    # The order pipeline.
    run_worker: bool = setting(
        True, "LIVECART_RUN_WORKER", "`0`: no order pipeline in this process (as `--no-worker`)"
    )
    worker_batch: int = setting(500, "LIVECART_WORKER_BATCH", "orders entries read at once")
    worker_block_ms: int = setting(
        1000, "LIVECART_WORKER_BLOCK_MS", "how long one read waits for new orders entries"
    )
    worker_claim_idle_ms: int = setting(
        30_000,
        "LIVECART_WORKER_CLAIM_IDLE_MS",
        "entries a consumer has held this long unacknowledged are claimed (it died)",
    )
    worker_max_deliveries: int = setting(
        5,
        "LIVECART_WORKER_MAX_DELIVERIES",
        "deliveries an entry gets before it is moved to the dead-letter stream",
    )
    worker_trim_interval_ms: int = setting(
        10_000,
        "LIVECART_WORKER_TRIM_INTERVAL_MS",
        "how often a worker deletes the entries it has acknowledged from the orders streams",
    )
    # Money (decision 0027; docs/money.md).
    platform_fee_bps: int = setting(
        500,
        "LIVECART_PLATFORM_FEE_BPS",
        "the platform's fee in basis points of each sale (500 = 5 %), fixed on the order when "
        "it is paid",
    )
    ship_by_hours: float = setting(
        72.0, "LIVECART_SHIP_BY_HOURS", "after payment, when an order should have shipped"
    )
    ship_limit_hours: float = setting(
        120.0,
        "LIVECART_SHIP_LIMIT_HOURS",
        "after payment, when an unshipped order is cancelled and refunded automatically",
    )
    delivery_days: float = setting(
        7.0, "LIVECART_DELIVERY_DAYS", "after shipping, when delivery is expected (shown only)"
    )
    settlement_days: float = setting(
        7.0,
        "LIVECART_SETTLEMENT_DAYS",
        "after delivery, when an order's net amount becomes available to withdraw",
    )
    return_window_days: float = setting(
        7.0,
        "LIVECART_RETURN_WINDOW_DAYS",
        "after delivery, how long a buyer can ask for a refund or a return",
    )
    return_response_hours: float = setting(
        48.0,
        "LIVECART_RETURN_RESPONSE_HOURS",
        "a buyer's request the seller leaves unanswered this long is approved; an offer the "
        "buyer leaves unanswered as long is closed",
    )
    return_ship_back_days: float = setting(
        7.0,
        "LIVECART_RETURN_SHIP_BACK_DAYS",
        "an approved return not shipped back within this is closed",
    )
    return_receive_days: float = setting(
        10.0,
        "LIVECART_RETURN_RECEIVE_DAYS",
        "a return shipped back but not confirmed within this is treated as received "
        "(refunded, nothing restocked)",
    )
    money_interval_s: float = setting(
        5.0,
        "LIVECART_MONEY_INTERVAL_S",
        "how often pending refunds and payouts are finished and the order rules (deadlines, "
        "requests, settlement) are applied; also once at start-up",
    )
    webhook_secret: str | None = setting(
        None,
        "LIVECART_WEBHOOK_SECRET",
        "the payment provider's webhook signing secret: `POST /api/payments/webhook` accepts a "
        "body whose `Livecart-Signature` is signed with it, and the sandbox signs with it",
        SECRET,
        shown="derived from `LIVECART_SECRET_KEY` (HMAC-SHA256), the same on every node",
    )
    previous_webhook_secrets: tuple[str, ...] = setting(
        (),
        "LIVECART_PREVIOUS_WEBHOOK_SECRETS",
        "webhook secrets still accepted while the provider moves to the new one (rotation); "
        "with no `LIVECART_WEBHOOK_SECRET`, those derived from `LIVECART_PREVIOUS_SECRET_KEYS` "
        "are accepted too",
        SECRET_LIST,
    )
    webhook_tolerance_s: int = setting(
        300,
        "LIVECART_WEBHOOK_TOLERANCE_S",
        "a webhook signed more than this many seconds away from the server's clock, before or "
        "after, is refused (`signature_expired`): a captured one cannot be replayed later",
        COUNT,
    )
    # Room websockets.
    allowed_origins: tuple[str, ...] = setting(
        (),
        "LIVECART_ALLOWED_ORIGINS",
        "origins allowed besides the page's own (same host:port) to open room websockets and "
        "to call WHIP/WHEP from the browser (CORS)",
        ORIGINS,
    )
    ws_ping_interval_s: float = setting(
        20.0, "LIVECART_WS_PING_INTERVAL_S", "websocket keepalive: a ping this often"
    )
    ws_ping_timeout_s: float = setting(
        20.0,
        "LIVECART_WS_PING_TIMEOUT_S",
        "a connection that does not answer a ping this soon is closed",
    )
    ws_hello_timeout_s: float = setting(
        10.0, "LIVECART_WS_HELLO_TIMEOUT_S", "a connection must send a valid `hello` this soon"
    )
    ws_max_buffer: int = setting(
        1 << 20,
        "LIVECART_WS_MAX_BUFFER",
        "bytes unsent to one viewer before it is dropped (close 4000) to resume later",
    )
    ws_max_replay: int = setting(
        500,
        "LIVECART_WS_MAX_REPLAY",
        "a resuming viewer missing more events than this gets a snapshot instead",
    )
    ws_message_rate: float = setting(
        10.0, "LIVECART_WS_MESSAGE_RATE", "messages a second per connection, after the burst"
    )
    ws_message_burst: float = setting(
        20.0, "LIVECART_WS_MESSAGE_BURST", "messages per connection at once"
    )
    ws_strikes: float = setting(
        10.0, "LIVECART_WS_STRIKES", "bad messages tolerated at once; the next closes with 1008"
    )
    ws_strike_refill: float = setting(0.2, "LIVECART_WS_STRIKE_REFILL", "strikes forgiven a second")
    chat_lines: int = setting(
        3, "LIVECART_CHAT_LINES", "chat lines per user per room in each chat window"
    )
    chat_window_ms: int = setting(
        5000, "LIVECART_CHAT_WINDOW_MS", "the window in which `LIVECART_CHAT_LINES` are counted"
    )
    # Rooms.
    room_log_maxlen: int = setting(
        2000,
        "LIVECART_ROOM_LOG_MAXLEN",
        "events kept per room for resuming viewers (about: Redis trims whole nodes)",
    )
    room_unhosted_end_s: int = setting(
        600,
        "LIVECART_ROOM_UNHOSTED_END_S",
        "a room with no creator connected and no video for this long is ended (`0`: never)",
    )
    room_tick_s: float = setting(
        0.1,
        "LIVECART_ROOM_TICK_S",
        "how often a node moves its watched rooms' deals along the clock and sends stock left "
        "(a reservation or release moves the deal's room at once as well)",
    )
    room_report_s: float = setting(
        1.0, "LIVECART_ROOM_REPORT_S", "how often a node reports its viewers and likes per room"
    )
    room_recent_chat: int = setting(
        50, "LIVECART_ROOM_RECENT_CHAT", "chat lines a joining viewer's snapshot carries"
    )
    # Rooms this process hosts itself, so they never count as abandoned while it runs: the
    # demo's room. Not a setting: not read from the environment.
    hosted_room_ids: tuple[int, ...] = ()
    # Live video (WHIP/WHEP).
    video_max_viewers: int = setting(
        500, "LIVECART_VIDEO_MAX_VIEWERS", "WHEP viewers per node; beyond it `503`"
    )
    video_retry_after_s: int = setting(
        10, "LIVECART_VIDEO_RETRY_AFTER_S", "the `Retry-After` of that `503`"
    )
    video_bitrate: int = setting(
        800_000, "LIVECART_VIDEO_BITRATE", "bits per second of the 360p VP8 rendition"
    )
    video_keyframe_interval_s: float = setting(
        4.0, "LIVECART_VIDEO_KEYFRAME_INTERVAL_S", "a keyframe at least this often"
    )
    video_min_keyframe_gap_s: float = setting(
        0.5,
        "LIVECART_VIDEO_MIN_KEYFRAME_GAP_S",
        "keyframes asked for (joining viewers, PLI/FIR) at most one per this gap",
    )
    video_publisher_grace_s: float = setting(
        30.0,
        "LIVECART_VIDEO_PUBLISHER_GRACE_S",
        "how long viewers stay connected after the creator's connection drops",
    )
    video_stall_s: float = setting(
        10.0,
        "LIVECART_VIDEO_STALL_S",
        "a publisher that sends no picture for this long has gone (a phone off its network)",
    )
    webrtc_connect_timeout_s: float = setting(
        20.0, "LIVECART_WEBRTC_CONNECT_TIMEOUT_S", "a peer not connected by then is hung up"
    )
    ice_servers: tuple[str, ...] = setting(
        (),
        "LIVECART_ICE_SERVERS",
        "STUN/TURN URLs the server's peers gather with and advertise to clients in WHIP/WHEP "
        "`Link` headers; list only servers the server can reach (docs/video.md)",
        HEADER_LIST,
    )
    turn_username: str | None = setting(
        None, "LIVECART_TURN_USERNAME", "the TURN servers' username", HEADER_TEXT
    )
    turn_credential: str | None = setting(
        None, "LIVECART_TURN_CREDENTIAL", "the TURN servers' credential", HEADER_TEXT
    )
    webrtc_addresses: tuple[str, ...] = setting(
        (),
        "LIVECART_WEBRTC_ADDRESSES",
        "host candidate addresses, e.g. `127.0.0.1`",
        shown="every interface but the loopback",
    )
    # Logs.
    access_log: bool = setting(
        True,
        "LIVECART_ACCESS_LOG",
        "`0`: no access log lines (responses and error bodies still carry the request id)",
    )
    log_format: str = setting(
        LOG_FORMATS[0],
        "LIVECART_LOG_FORMAT",
        "`json`: every log record, access lines included, as one JSON object per line on stderr",
        choice(*LOG_FORMATS),
    )
    # Per client address (decision 0019; README: Per-address limits).
    trusted_proxies: tuple[str, ...] = setting(
        LOOPBACK_PROXIES,
        "LIVECART_TRUSTED_PROXIES",
        "proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client: the "
        "right-most address in it that is not one of them",
        PROXIES,
    )
    session_rate_per_s: float = setting(
        1.0,
        "LIVECART_SESSION_RATE",
        "new guest sessions a second per client address, after the burst (`0`: no limit)",
        NOT_NEGATIVE,
    )
    session_burst: int = setting(
        60, "LIVECART_SESSION_BURST", "new guest sessions per client address at once", COUNT
    )
    sign_in_rate_per_s: float = setting(
        0.2,
        "LIVECART_SIGN_IN_RATE",
        "buyer sign-in and sign-up attempts a second per client address, after the burst "
        "(`0`: no limit)",
        NOT_NEGATIVE,
    )
    sign_in_burst: int = setting(
        20, "LIVECART_SIGN_IN_BURST", "sign-in attempts per client address at once", COUNT
    )
    account_sign_in_rate_per_s: float = setting(
        0.05,
        "LIVECART_ACCOUNT_SIGN_IN_RATE",
        "sign-in attempts a second for one account's e-mail, from anywhere, after the burst "
        "(`0`: no limit)",
        NOT_NEGATIVE,
    )
    account_sign_in_burst: int = setting(
        5, "LIVECART_ACCOUNT_SIGN_IN_BURST", "sign-in attempts for one e-mail at once", COUNT
    )
    reserve_rate_per_s: float = setting(
        5.0,
        "LIVECART_RESERVE_RATE",
        "reservations (HTTP and websocket `buy`) a second per client address in each deal, "
        "after the burst (`0`: no limit)",
        NOT_NEGATIVE,
    )
    reserve_burst: int = setting(
        30, "LIVECART_RESERVE_BURST", "reservations per client address in each deal at once", COUNT
    )
    chat_rate_per_s: float = setting(
        2.0,
        "LIVECART_CHAT_RATE",
        "viewers' chat lines a second per client address, whoever chats behind it, on top of "
        "the per-user window, after the burst (`0`: no limit)",
        NOT_NEGATIVE,
    )
    chat_burst: int = setting(
        30, "LIVECART_CHAT_BURST", "viewers' chat lines per client address at once", COUNT
    )
    address_hold_cap: int = setting(
        10,
        "LIVECART_ADDRESS_HOLD_CAP",
        "units of one deal, or of one SKU at list price, one client address may hold at once, "
        "held or paying (`0`: no cap)",
        COUNT,
    )
    # Accounts and mail (decision 0041).
    mail_url: str = setting(
        "",
        "LIVECART_MAIL_URL",
        "where mail goes: `smtp://user:password@host:587` (STARTTLS) or `smtps://…:465`; "
        "empty: each message is written as an `.eml` file under the data dir's `mail/`",
        MAIL_URL,
        shown="files under the data dir's `mail/`",
    )
    mail_from: str = setting(
        "livecart <no-reply@localhost>", "LIVECART_MAIL_FROM", "the From of livecart's mail"
    )
    public_url: str = setting(
        "",
        "LIVECART_PUBLIC_URL",
        "the address people open livecart at (`https://shop.example`), for links in mail and "
        "as passkeys' site (their RP ID and origin); empty: the address the request came to",
    )
    # Benchmarks and tests.
    bench_routes: bool = setting(
        False,
        "LIVECART_BENCH_ROUTES",
        "the benchmarks' routes: `POST /api/noop`, the room echo and `GET /api/fault/500` "
        "(fails on purpose); never in production",
    )

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(**{s.field: s.reader.parse(env, s.variable, s.default) for s in SETTINGS})

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """Oldest to newest, as itsdangerous takes them: sign with the last, accept any."""
        assert self.secret_key is not None, "with_defaults() fills in the secret key"
        return (*self.previous_secret_keys, self.secret_key)

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The secrets a payment webhook may be signed with, the one to sign with first. With
        no ``LIVECART_WEBHOOK_SECRET``, each is derived from a secret key, so every node of a
        deployment (which shares the key) derives the same, and rotating the key rotates it."""
        if self.webhook_secret is not None:
            return (self.webhook_secret, *self.previous_webhook_secrets)
        assert self.secret_key is not None, "with_defaults() fills in the secret key"
        derived = [webhook_secret_from(key) for key in self.signing_keys[::-1]]
        return (derived[0], *self.previous_webhook_secrets, *derived[1:])

    @property
    def checkout_lease_ms(self) -> int:
        return int(self.checkout_lease_s * 1000)

    def with_defaults(self) -> Settings:
        """Fill in what the embedded runtime decides: the SQLite file and a persisted secret."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, object] = {"data_dir": self.data_dir.resolve()}
        if self.database_url is None:
            updates["database_url"] = f"sqlite:///{(self.data_dir / 'livecart.db').resolve()}"
        if self.secret_key is None:
            updates["secret_key"] = _persisted_secret(self.data_dir / "secret.key")
        return replace(self, **updates)  # type: ignore[arg-type]


def webhook_secret_from(secret_key: str) -> str:
    """The webhook secret a secret key stands for: an HMAC of a fixed label, so the secret key
    itself never leaves the node (a webhook secret is handed to the payment provider)."""
    return hmac.new(secret_key.encode(), b"livecart payment webhooks", hashlib.sha256).hexdigest()


def _persisted_secret(path: Path) -> str:
    # Kept on disk so guest sessions survive a restart of the embedded runtime.
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


@dataclass(frozen=True)
class Setting:
    """One declared setting, resolved: its field, variable, reader, default and doc."""

    field: str
    variable: str
    doc: str
    reader: Reader
    default: Any
    shown: str | None


def _resolve() -> tuple[Setting, ...]:
    types = typing.get_type_hints(Settings)
    found = []
    for f in fields(Settings):
        declared: Variable | None = f.metadata.get("variable")
        if declared is None:
            continue  # runtime state, not a setting
        reader = declared.reader or BY_TYPE[types[f.name]]
        found.append(
            Setting(f.name, declared.name, declared.doc, reader, f.default, declared.shown)
        )
    return tuple(found)


SETTINGS = _resolve()
