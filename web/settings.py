"""The one typed settings object, read once from the environment with sane local defaults.

With no ``REDIS_URL`` livecart runs a private Valkey under the data directory; with no
``DATABASE_URL`` it keeps a SQLite file there.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from redis.asyncio.connection import parse_url


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default), case-insensitive."""
    raw = (env.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _header_text(env: Mapping[str, str], name: str) -> str | None:
    """Text sent in HTTP headers (the ICE servers and TURN credentials in WHIP/WHEP ``Link``
    headers): printable ASCII, or every answer would fail."""
    raw = env.get(name) or None
    if raw is not None and not (raw.isascii() and raw.isprintable()):
        raise SystemExit(f"{name} must be printable ASCII (it is sent in an HTTP header)")
    return raw


def _header_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    _header_text(env, name)  # refuses what a header cannot carry
    return _list(env, name)


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret given as ``name``, or read from the file ``name_FILE`` names (a mounted Docker or
    Kubernetes secret, kept out of the environment and of ``ps``), surrounding whitespace
    stripped. Never both."""
    path = env.get(f"{name}_FILE") or None
    if path is None:
        return env.get(name) or None
    if env.get(name):
        raise SystemExit(f"Set {name} or {name}_FILE, not both.")
    try:
        value = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"{name}_FILE: cannot read {path}: {err}") from None
    if not value:
        raise SystemExit(f"{name}_FILE: {path} is empty.")
    return value


def _secret_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Secrets separated by commas or line breaks (one a line in a ``_FILE``)."""
    raw = _secret(env, name) or ""
    return tuple(item.strip() for item in re.split(r"[,\n]", raw) if item.strip())


def _redis_url(env: Mapping[str, str]) -> str | None:
    """``REDIS_URL`` as redis-py reads it (user, password, ``rediss://`` and TLS query
    parameters included), refused at startup rather than at the first request."""
    url = _secret(env, "REDIS_URL")
    if url is not None:
        try:
            parse_url(url)
        except ValueError as err:  # the message never repeats the URL and its password
            raise SystemExit(f"REDIS_URL: {err}") from None
    return url


def _not_negative(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value < 0:
        raise SystemExit(f"{name} must be 0 (off) or more, not {value}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SystemExit(f"{name} must be 0 (off) or more, not {value}")
    return value


LOOPBACK_PROXIES = ("127.0.0.1", "::1")


def _proxies(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """IP addresses and networks (CIDR) whose ``X-Forwarded-For`` is believed; ``none``: no
    proxy's. Unset: the loopback (a proxy on the same machine), as uvicorn's own default."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return LOOPBACK_PROXIES
    if raw.lower() == "none":
        return ()
    proxies = []
    for proxy in _list(env, name):
        try:
            # Networks in their canonical form (10.1.2.3/8 -> 10.0.0.0/8): uvicorn, which
            # applies the list, would take any other form for a name and trust nobody by it.
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            # "*" too: trusting every peer would let any client name its own address.
            raise SystemExit(f"{name}: {proxy!r} is not an IP address or network") from None
        proxies.append(str(network) if "/" in proxy else proxy)
    return tuple(proxies)


LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".livecart")
    redis_url: str | None = None
    database_url: str | None = None
    redis_prefix: str = "lc"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = None
    # Keys that signed tokens and cookies before the current one: still accepted, never used
    # to sign. Keep one for as long as what it signed should stay valid (see README).
    previous_secret_keys: tuple[str, ...] = ()
    hold_ttl_s: int = 120
    pay_ttl_s: int = 120
    session_max_age_s: int = 30 * 24 * 3600
    # A seller signed in on the pages stays signed in this long.
    seller_session_max_age_s: int = 7 * 24 * 3600
    # Mark the sign-in cookie Secure (send it over HTTPS only). Default: when the request
    # arrived over HTTPS (as a TLS-terminating proxy reports with X-Forwarded-Proto).
    cookie_secure: bool | None = None
    run_worker: bool = True
    sweep_interval_ms: int = 1000
    worker_batch: int = 500
    worker_claim_idle_ms: int = 30_000
    worker_max_deliveries: int = 5
    # How often the pipeline trims what it has acknowledged from the orders streams.
    worker_trim_interval_ms: int = 10_000
    payment_delay_ms: int = 0
    bench_routes: bool = False
    # Origins allowed besides the page's own (same host:port as the request): to open room
    # websockets, and to call WHIP/WHEP from the browser (CORS).
    allowed_origins: tuple[str, ...] = ()
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    ws_hello_timeout_s: float = 10.0
    # A viewer with more unsent bytes than this is dropped (close 4000) and resumes later.
    ws_max_buffer: int = 1 << 20
    # Events kept per room for resuming viewers (approximately: Redis trims whole nodes).
    room_log_maxlen: int = 2000
    # A room with no video and no creator connected for this long is ended (0: never).
    room_unhosted_end_s: int = 600
    # Rooms this process hosts itself, so they never count as abandoned while it runs: the
    # demo's room. Not read from the environment.
    hosted_room_ids: tuple[int, ...] = ()
    # Live video (WHIP/WHEP): viewers per node, and how long a stage waits for its creator.
    video_max_viewers: int = 500
    video_bitrate: int = 800_000
    video_keyframe_interval_s: float = 4.0
    # Keyframes asked for by joining viewers and their PLI/FIR: at most one per this gap.
    video_min_keyframe_gap_s: float = 0.5
    video_publisher_grace_s: float = 30.0
    # A publisher that sends no picture for this long has gone (silently: a phone off network).
    video_stall_s: float = 10.0
    webrtc_connect_timeout_s: float = 20.0
    # ICE: servers offered to peers (stun:/turn: URLs), and the host addresses to gather from
    # (empty: every interface but the loopback).
    ice_servers: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_credential: str | None = None
    webrtc_addresses: tuple[str, ...] = ()
    # A checkout's claim on its Idempotency-Key lasts this long unless renewed (every third of
    # it while the checkout runs): a retry after a crash waits at most this long.
    checkout_lease_s: float = 5.0
    # How often pending payment attempts whose request died are settled (decision 0017).
    reconcile_interval_s: float = 5.0
    # Fault injection for the crash tests: the worker sleeps after commit and before XACK.
    fault_stall_before_ack_s: float = 0.0
    # Fault injection for the crash tests: SIGKILL at this point (checkout/faults.py POINTS).
    fault_crash_at: str = ""
    # ... only while this file exists (it is removed as the process dies).
    fault_crash_file: Path | None = None
    # One line per request on the livecart.access logger (the X-Request-ID header and the
    # request id in error bodies stay either way).
    access_log: bool = True
    # "text" (one readable line per record) or "json" (one JSON object per line), on stderr.
    log_format: str = "text"
    # Per client address (decision 0019): proxies whose X-Forwarded-For names the client; token
    # buckets (a rate per second and a burst; 0 in either: off) for new guest sessions, for
    # reservations in each deal and for chat lines; the units of one deal that one address may
    # hold at once (0: no cap).
    trusted_proxies: tuple[str, ...] = LOOPBACK_PROXIES
    session_rate_per_s: float = 1.0
    session_burst: int = 60
    reserve_rate_per_s: float = 5.0
    reserve_burst: int = 30
    chat_rate_per_s: float = 2.0
    chat_burst: int = 30
    address_hold_cap: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            data_dir=Path(env.get("LIVECART_DATA_DIR") or ".livecart"),
            redis_url=_redis_url(env),
            database_url=_secret(env, "DATABASE_URL"),
            redis_prefix=env.get("LIVECART_REDIS_PREFIX") or "lc",
            host=env.get("LIVECART_HOST") or "127.0.0.1",
            port=_int(env, "LIVECART_PORT", 8000),
            secret_key=_secret(env, "LIVECART_SECRET_KEY"),
            previous_secret_keys=_secret_list(env, "LIVECART_PREVIOUS_SECRET_KEYS"),
            hold_ttl_s=_int(env, "LIVECART_HOLD_TTL_S", 120),
            pay_ttl_s=_int(env, "LIVECART_PAY_TTL_S", 120),
            run_worker=_bool(env, "LIVECART_RUN_WORKER", True),
            cookie_secure=(
                _bool(env, "LIVECART_COOKIE_SECURE", False)
                if env.get("LIVECART_COOKIE_SECURE")
                else None
            ),
            sweep_interval_ms=_int(env, "LIVECART_SWEEP_INTERVAL_MS", 1000),
            worker_batch=_int(env, "LIVECART_WORKER_BATCH", 500),
            worker_claim_idle_ms=_int(env, "LIVECART_WORKER_CLAIM_IDLE_MS", 30_000),
            worker_max_deliveries=_int(env, "LIVECART_WORKER_MAX_DELIVERIES", 5),
            worker_trim_interval_ms=_int(env, "LIVECART_WORKER_TRIM_INTERVAL_MS", 10_000),
            payment_delay_ms=_int(env, "LIVECART_PAYMENT_DELAY_MS", 0),
            bench_routes=_bool(env, "LIVECART_BENCH_ROUTES", False),
            allowed_origins=tuple(o.rstrip("/") for o in _list(env, "LIVECART_ALLOWED_ORIGINS")),
            ws_ping_interval_s=_float(env, "LIVECART_WS_PING_INTERVAL_S", 20.0),
            ws_ping_timeout_s=_float(env, "LIVECART_WS_PING_TIMEOUT_S", 20.0),
            ws_hello_timeout_s=_float(env, "LIVECART_WS_HELLO_TIMEOUT_S", 10.0),
            ws_max_buffer=_int(env, "LIVECART_WS_MAX_BUFFER", 1 << 20),
            room_log_maxlen=_int(env, "LIVECART_ROOM_LOG_MAXLEN", 2000),
            room_unhosted_end_s=_int(env, "LIVECART_ROOM_UNHOSTED_END_S", 600),
            video_max_viewers=_int(env, "LIVECART_VIDEO_MAX_VIEWERS", 500),
            video_bitrate=_int(env, "LIVECART_VIDEO_BITRATE", 800_000),
            video_keyframe_interval_s=_float(env, "LIVECART_VIDEO_KEYFRAME_INTERVAL_S", 4.0),
            video_min_keyframe_gap_s=_float(env, "LIVECART_VIDEO_MIN_KEYFRAME_GAP_S", 0.5),
            video_stall_s=_float(env, "LIVECART_VIDEO_STALL_S", 10.0),
            video_publisher_grace_s=_float(env, "LIVECART_VIDEO_PUBLISHER_GRACE_S", 30.0),
            webrtc_connect_timeout_s=_float(env, "LIVECART_WEBRTC_CONNECT_TIMEOUT_S", 20.0),
            ice_servers=_header_list(env, "LIVECART_ICE_SERVERS"),
            turn_username=_header_text(env, "LIVECART_TURN_USERNAME"),
            turn_credential=_header_text(env, "LIVECART_TURN_CREDENTIAL"),
            webrtc_addresses=_list(env, "LIVECART_WEBRTC_ADDRESSES"),
            checkout_lease_s=_float(env, "LIVECART_CHECKOUT_LEASE_S", 5.0),
            reconcile_interval_s=_float(env, "LIVECART_RECONCILE_INTERVAL_S", 5.0),
            fault_stall_before_ack_s=float(env.get("LIVECART_FAULT_STALL_BEFORE_ACK_S") or 0),
            fault_crash_at=env.get("LIVECART_FAULT_CRASH_AT") or "",
            fault_crash_file=(
                Path(env["LIVECART_FAULT_CRASH_FILE"])
                if env.get("LIVECART_FAULT_CRASH_FILE")
                else None
            ),
            access_log=_bool(env, "LIVECART_ACCESS_LOG", True),
            log_format=_choice(env, "LIVECART_LOG_FORMAT", LOG_FORMATS),
            trusted_proxies=_proxies(env, "LIVECART_TRUSTED_PROXIES"),
            session_rate_per_s=_not_negative(env, "LIVECART_SESSION_RATE", 1.0),
            session_burst=_count(env, "LIVECART_SESSION_BURST", 60),
            reserve_rate_per_s=_not_negative(env, "LIVECART_RESERVE_RATE", 5.0),
            reserve_burst=_count(env, "LIVECART_RESERVE_BURST", 30),
            chat_rate_per_s=_not_negative(env, "LIVECART_CHAT_RATE", 2.0),
            chat_burst=_count(env, "LIVECART_CHAT_BURST", 30),
            address_hold_cap=_count(env, "LIVECART_ADDRESS_HOLD_CAP", 10),
        )

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """Oldest to newest, as itsdangerous takes them: sign with the last, accept any."""
        assert self.secret_key is not None, "with_defaults() fills in the secret key"
        return (*self.previous_secret_keys, self.secret_key)

    def with_defaults(self) -> Settings:
        """Fill in what the embedded runtime decides: the SQLite file and a persisted secret."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, object] = {"data_dir": self.data_dir.resolve()}
        if self.database_url is None:
            updates["database_url"] = f"sqlite:///{(self.data_dir / 'livecart.db').resolve()}"
        if self.secret_key is None:
            updates["secret_key"] = _persisted_secret(self.data_dir / "secret.key")
        return replace(self, **updates)  # type: ignore[arg-type]


def _persisted_secret(path: Path) -> str:
    # Kept on disk so guest sessions survive a restart of the embedded runtime.
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    path.write_text(secret)
    path.chmod(0o600)
    return secret
