"""livecart's command line: run the server (serve, demo, worker), set it up (migrate,
create-seller), check and mend the books (audit, replay-dead-letters), and go live with a
test pattern (publish)."""

# (The docstring above is also `livecart --help`'s description: notes for readers go here.)
# This module parses the options, checks the settings a command needs and hands their values
# on; the server's commands (serve, demo) and the composition root (web/app.py) stay in web/.
# Each other command's body lives beside what it runs: checkout/commands.py (worker, audit,
# replay-dead-letters), catalog/commands.py (create-seller), live/media/commands.py (publish).
#
# A command imports its body's module when it runs, not at the top: the server (web.app, with
# Starlette, SQLAlchemy and aiortc) takes ~0.55 s to import, checkout's commands ~0.3 s
# (SQLAlchemy, redis), the migrations ~0.25 s (Alembic), publish ~0.17 s (aiortc). At the top,
# every command and --help would pay for all of them (~0.8 s instead of 0.15 to 0.45 s).

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

import uvicorn

from checkout.faults import NO_CRASH, CrashPoints
from kernel.errors import DomainError
from live.protocol import MAX_MESSAGE_BYTES
from web.access import configure_logging
from web.settings import Settings
from web.settings_docs import help_epilog
from web.wsserver import LivecartWebSocketProtocol

DEFAULT_URL = "http://127.0.0.1:8000"


def _serve(settings: Settings, crash: CrashPoints, banner: str = "", workers: int = 1) -> None:
    if banner:
        print(banner, flush=True)
    if workers > 1:
        from web.processes import listening_socket, run_workers

        sock = listening_socket(settings.host, settings.port)
        sys.exit(run_workers(workers, lambda s: _serve_one(settings, crash, s), sock))
    _serve_one(settings, crash)


def _serve_one(settings: Settings, crash: CrashPoints, sock: socket.socket | None = None) -> None:
    """One server process; on ``sock`` (a worker of ``--workers``), or binding its own."""
    from web.app import create_app  # the server: see the note at the top

    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again; with the
    # default action that kills the process before the embedded Valkey is stopped (it would
    # outlive us). As an exception it unwinds through runtime()'s cleanup instead.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    config = uvicorn.Config(
        create_app(settings, crash),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=LivecartWebSocketProtocol,
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_per_message_deflate=False,  # frames are built once for every viewer: see wsserver.py
        # The client's address (access log, per-address limits) is the socket peer, or the
        # right-most address in X-Forwarded-For that is not one of these proxies.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        log_level="warning",  # uvicorn's own access log stays off: web/access.py writes ours
        log_config=None,  # uvicorn's records go through main()'s handler (JSON lines too)
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises SIGINT once it has shut down; uvicorn.run() swallowed it, so do we.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=None if sock is None else [sock])


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace, settings: Settings, crash: CrashPoints) -> None:
    from web.runtime import runtime  # migrations, SQLAlchemy: see the note at the top

    with runtime(settings) as ready:
        banner = f"livecart serving on http://{ready.host}:{ready.port}"
        if args.workers > 1:
            banner += f" ({args.workers} processes)"
        _serve(ready, crash, banner, args.workers)


def cmd_demo(args: argparse.Namespace, settings: Settings, crash: CrashPoints) -> None:
    # The demo's seeding and the runtime: SQLAlchemy and migrations, see the note at the top.
    from web.demo import seed_demo
    from web.runtime import runtime

    with runtime(settings) as ready:
        demo = asyncio.run(seed_demo(ready))
        base = f"http://{ready.host}:{ready.port}"
        _serve(
            # The demo hosts its own room: it stays live while the demo runs.
            replace(ready, hosted_room_ids=(demo.room_id,)),
            crash,
            "\n".join(
                [
                    f"livecart demo on {base}",
                    f"  watch the live: {base}/live/{demo.room_id}",
                    f"  creator studio: {base}/studio/{demo.room_id} (sign in: seller token)",
                    f"  seller center:  {base}/seller",
                    f"  storefront:     {base}/shop/{demo.shop_handle}",
                    f"  deals:          {base}/api/deals",
                    f"  live deal:      {base}/api/deals/{demo.live_deal_id}",
                    f"  live room:      {base}/api/rooms/{demo.room_id}",
                    f"  room socket:    ws://{ready.host}:{ready.port}/ws/rooms/{demo.room_id}",
                    f"  API document:   {base}/openapi.json",
                    f"  health:         {base}/healthz",
                    f"  seller token:   {demo.seller_token}",
                    f"  live voucher:   {demo.live_voucher} (drop it from the studio)",
                    f"  video:          {publish_line(demo.room_id, base, demo.seller_token)}",
                ]
            ),
            args.workers,
        )


def publish_line(room_id: int, base: str, token: str) -> str:
    url = "" if base == DEFAULT_URL else f" --url {base}"
    return f"{typed_command()} publish {room_id}{url} --token {token}"


def typed_command() -> str:
    """The ``livecart`` command as a person can type it here. README's ``.venv/bin/livecart
    demo`` leaves ``livecart`` off the PATH, so the bare name would not run; its path would."""
    script = Path(sys.argv[0])
    if script.name != "livecart":  # python -m web.cli: the script installed beside this Python
        script = Path(sys.executable).parent / "livecart"
    if not script.is_file():
        return "livecart"
    script = script.absolute()
    on_path = shutil.which("livecart")
    if on_path and Path(on_path).absolute() == script:
        return "livecart"
    try:
        relative = script.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script))
    # "./livecart", not "livecart": a shell looks up a bare name on the PATH, not here.
    return shlex.quote(str(relative) if relative.parent != Path() else f"./{relative}")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    # Alembic and SQLAlchemy: see the note at the top.
    from kernel.db import redacted
    from web.migrate import upgrade

    settings = settings.with_defaults()
    assert settings.database_url is not None
    upgrade(settings.database_url)
    print(f"schema is up to date ({redacted(settings.database_url)})")


def cmd_create_seller(args: argparse.Namespace, settings: Settings) -> None:
    # Alembic and SQLAlchemy: see the note at the top.
    from catalog.commands import create_seller
    from web.migrate import upgrade

    settings = settings.with_defaults()
    assert settings.database_url is not None
    upgrade(settings.database_url)
    base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    asyncio.run(create_seller(settings.database_url, args.name, args.email, args.shop, base_url))


def cmd_worker(args: argparse.Namespace, settings: Settings, crash: CrashPoints) -> None:
    if settings.redis_url is None:
        sys.exit("livecart worker needs REDIS_URL: the embedded Valkey is private to serve.")
    asyncio.run(_work(settings.with_defaults(), crash))


async def _work(settings: Settings, crash: CrashPoints = NO_CRASH) -> None:
    # The composition root and the worker's loops: see the note at the top.
    from checkout.commands import Worker
    from web.app import build_services, order_rules

    svc = build_services(replace(settings, run_worker=True), crash)
    assert svc.pipeline is not None
    try:
        await Worker(
            svc.pipeline,
            svc.holds,
            svc.db,
            svc.till,
            svc.idempotency,
            svc.refunds,
            order_rules(svc),
            sweep_interval_ms=settings.sweep_interval_ms,
            lease_ms=settings.checkout_lease_ms,
            reconcile_interval_s=settings.reconcile_interval_s,
            money_interval_s=settings.money_interval_s,
        ).run()
    finally:
        await svc.push.nudges.close()  # restocks of refunds nudge rooms too
        await svc.redis.aclose()
        await svc.db.close()


def cmd_audit(args: argparse.Namespace, settings: Settings) -> None:
    from checkout.commands import audit  # SQLAlchemy, redis: see the note at the top

    if settings.redis_url is None or settings.database_url is None:
        sys.exit("livecart audit needs REDIS_URL and DATABASE_URL (the stores to check).")
    stores = settings.redis_url, settings.database_url, settings.redis_prefix
    sys.exit(0 if asyncio.run(audit(*stores, args.deal, args.wait)) else 1)


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> None:
    from checkout.commands import reconcile  # SQLAlchemy, redis: see the note at the top

    if settings.redis_url is None or settings.database_url is None:
        sys.exit("livecart reconcile needs REDIS_URL and DATABASE_URL (the stores to compare).")
    stores = settings.redis_url, settings.database_url, settings.redis_prefix
    sys.exit(0 if asyncio.run(reconcile(*stores, args.deal, args.repair)) else 1)


def cmd_replay_dead_letters(args: argparse.Namespace, settings: Settings) -> None:
    from checkout.commands import replay  # SQLAlchemy, redis: see the note at the top

    if settings.redis_url is None:
        sys.exit("replay-dead-letters needs REDIS_URL (the embedded Valkey runs inside serve).")
    asyncio.run(replay(settings.redis_url, settings.redis_prefix, args.deal))


def cmd_publish(args: argparse.Namespace, settings: Settings) -> None:
    from live.media.commands import publish  # aiortc: see the note at the top

    token = args.token or settings.publish_token
    if not token:
        raise SystemExit("publish needs the creator's seller token: --token or LIVECART_TOKEN")
    publish(
        args.url,
        args.room,
        token,
        size=args.size,
        fps=args.fps,
        seconds=args.seconds,
        host_addresses=settings.webrtc_addresses,
    )


def _fps(text: str) -> int:
    fps = _whole_number(text)
    if not 1 <= fps <= 60:
        raise argparse.ArgumentTypeError(f"frames per second go from 1 to 60, not {fps}")
    return fps


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"WIDTHxHEIGHT, like 640x360, not {text!r}") from None
    # The pattern's 4:2:0 chroma planes are laid out in rows of the full width, so a width
    # must be even and a height a multiple of 4 (live/media/pattern.py).
    if not (16 <= width <= 1920 and 16 <= height <= 1080) or width % 2 or height % 4:
        raise argparse.ArgumentTypeError(
            f"an even width and a height that is a multiple of 4, from 16x16 to 1920x1080, "
            f"not {text!r}"
        )
    return width, height


def _seconds(text: str) -> float:
    seconds = _wait(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"more than 0 seconds, not {text}")
    return seconds


def _wait(text: str) -> float:
    """Seconds, 0 included (audit --wait 0: look now)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, not {text!r}") from None
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"0 seconds or more, not {text}")
    return seconds


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None


def _base_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"a URL like {DEFAULT_URL}, not {text!r}")
    return text.rstrip("/")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livecart", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    defaults = Settings()
    for name, help_text in [
        ("serve", "run the server (and the order pipeline in process)"),
        ("demo", "serve with a seeded demo shop, a live flash deal and a live room"),
    ]:
        s = command(name, help_text, help_epilog())
        s.add_argument(
            "--host", help=f"address to listen on (default: LIVECART_HOST, {defaults.host})"
        )
        s.add_argument(
            "--port",
            type=_whole_number,
            help=f"port to listen on (default: LIVECART_PORT, {defaults.port})",
        )
        s.add_argument(
            "--no-worker", action="store_true", help="do not run the order pipeline in this process"
        )
        s.add_argument(
            "--workers",
            type=_whole_number,
            default=1,
            help="server processes on the one port, one per core is the rule (default: 1); "
            "each runs its own order pipeline consumer unless --no-worker",
        )
    command("worker", "run the order pipeline and hold sweeper (needs REDIS_URL)", help_epilog())
    command("migrate", "apply the database migrations")
    rd = command("replay-dead-letters", "put dead-lettered order entries back for the pipeline")
    rd.add_argument(
        "--deal", type=_whole_number, help="only this deal (default: every deal in view)"
    )
    au = command(
        "audit",
        "check the books: the ledger against orders, refunds and the payment provider, and "
        "with --deal a deal's in Redis and SQL (oversold and lost paid orders must be 0)",
    )
    au.add_argument("--deal", type=_whole_number, help="also this deal's books (its id)")
    au.add_argument(
        "--wait",
        type=_wait,
        default=30,
        help="seconds to let the pipeline catch up first (default: %(default)s)",
    )
    rc = command(
        "reconcile",
        "make Redis agree with the sales SQL knows were paid for, after a failover forgot some "
        "(decision 0040); reports only, unless --repair",
    )
    rc.add_argument("--deal", type=_whole_number, help="this deal only (default: every recent)")
    rc.add_argument("--repair", action="store_true", help="adopt the forgotten sales into Redis")
    cs = command("create-seller", "create a seller with a shop; prints its API token")
    cs.add_argument("--name", required=True, help="the seller's name")
    cs.add_argument("--email", required=True, help="the seller's email address")
    cs.add_argument("--shop", help='shop name (default: "<name>\'s shop")')
    pb = command("publish", "go live in a room with a synthetic test pattern and tone (WHIP)")
    pb.add_argument("room", type=_whole_number, help="the room's id")
    pb.add_argument("--token", help="the creator's seller token (default: LIVECART_TOKEN)")
    pb.add_argument(
        "--url",
        type=_base_url,
        default=DEFAULT_URL,
        help="the livecart server's address (default: %(default)s)",
    )
    pb.add_argument(
        "--seconds", type=_seconds, help="hang up after this many seconds (default: never)"
    )
    pb.add_argument(
        "--size",
        type=_size,
        default="640x360",
        metavar="WIDTHxHEIGHT",
        help="picture size (default: %(default)s)",
    )
    pb.add_argument(
        "--fps",
        type=_fps,
        default=30,
        help="frames per second, 1 to 60 (default: %(default)s)",
    )
    return p


# The commands that run the app: they take the crash points the crash tests install.
SERVING = {"serve": cmd_serve, "demo": cmd_demo, "worker": cmd_worker}
COMMANDS = {
    "migrate": cmd_migrate,
    "create-seller": cmd_create_seller,
    "replay-dead-letters": cmd_replay_dead_letters,
    "audit": cmd_audit,
    "reconcile": cmd_reconcile,
    "publish": cmd_publish,
}


def main(argv: list[str] | None = None, crash: CrashPoints = NO_CRASH) -> None:
    """``crash``: crash points for ``serve``, ``demo`` and ``worker``; only the crash tests
    pass any (tests/crashing.py)."""
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
        }.items()
        if v
    }
    if getattr(args, "no_worker", False):
        overrides["run_worker"] = False
    if getattr(args, "workers", 1) < 1:
        raise SystemExit(f"livecart {args.command}: --workers must be 1 or more")
    settings = replace(settings, **overrides)
    if args.command in SERVING:
        SERVING[args.command](args, settings, crash)
        return
    try:
        COMMANDS[args.command](args, settings)
    except DomainError as err:  # refused input (a taken email, an unknown deal): one line, no trace
        raise SystemExit(f"livecart {args.command}: {err.message} ({err.code})") from None


if __name__ == "__main__":
    main()
