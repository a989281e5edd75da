"""The one typed settings object, read once from the environment with sane local defaults.

With no ``REDIS_URL`` livecart runs a private Valkey under the data directory; with no
``DATABASE_URL`` it keeps a SQLite file there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


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
    # Fault injection for the crash tests: the worker sleeps after commit and before XACK.
    fault_stall_before_ack_s: float = 0.0
    # One line per request on the livecart.access logger (the X-Request-ID header and the
    # request id in error bodies stay either way).
    access_log: bool = True
    # "text" (one readable line per record) or "json" (one JSON object per line), on stderr.
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            data_dir=Path(env.get("LIVECART_DATA_DIR") or ".livecart"),
            redis_url=env.get("REDIS_URL") or None,
            database_url=env.get("DATABASE_URL") or None,
            redis_prefix=env.get("LIVECART_REDIS_PREFIX") or "lc",
            host=env.get("LIVECART_HOST") or "127.0.0.1",
            port=_int(env, "LIVECART_PORT", 8000),
            secret_key=env.get("LIVECART_SECRET_KEY") or None,
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
            fault_stall_before_ack_s=float(env.get("LIVECART_FAULT_STALL_BEFORE_ACK_S") or 0),
            access_log=_bool(env, "LIVECART_ACCESS_LOG", True),
            log_format=_choice(env, "LIVECART_LOG_FORMAT", LOG_FORMATS),
        )

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
