"""The Starlette application: routes, error handlers, and a lifespan that builds the services
(Redis, database, hold store, pipeline) and tears them down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator

from redis.exceptions import ClusterError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from checkout.attempts import AttemptStore
from checkout.batcher import ReserveBatcher
from checkout.cart import Carts
from checkout.cart_store import CartStore
from checkout.checkout import Till
from checkout.faults import NO_CRASH, CrashPoints
from checkout.holds import HoldStore
from checkout.idempotency import IdempotencyStore
from checkout.keys import Keyspace
from checkout.limits import Rate, RateLimiter, ReserveLimits
from checkout.order_store import MoneyTerms
from checkout.order_sweeper import OrderRules, sweep_orders_forever
from checkout.payments import SandboxProvider
from checkout.payouts import Payouts
from checkout.pipeline import OrderPipeline, PipelineConfig
from checkout.reconciler import reconcile_forever, reconcile_once
from checkout.refunds import Refunds
from checkout.shelf import ShelfStore
from checkout.shelving import Shelving
from checkout.sweeper import sweep_forever
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import DomainError
from kernel.redis_client import connect
from live import analytics_sql
from live import service as live_service
from live.analytics import RoomAnalytics
from live.auctions import Auctions
from live.bus import RoomBus
from live.comment_sales import CommentSales
from live.gateway import Gateway, GatewayConfig
from live.giveaways import Giveaways
from live.hub import Hub
from live.keys import LiveKeys
from live.media.broadcasts import Broadcasts, MediaConfig, StreamLock
from live.media.ice import ice_servers, use_host_addresses
from live.media.relay import VideoProfile
from live.news import LiveNews
from live.push import StockPush
from live.room_states import RoomStatus
from live.store import RoomStore
from people.auth_stamps import AuthStamps
from people.challenges import Challenges
from people.keys import PeopleKeys
from people.mail import FileSender, MailSender, SmtpSender
from web import (
    api_accounts,
    api_addresses,
    api_affiliates,
    api_analytics,
    api_auctions,
    api_cart,
    api_catalog,
    api_checkout,
    api_finance,
    api_follows,
    api_giveaways,
    api_media,
    api_orders,
    api_passkeys,
    api_payments,
    api_promotions,
    api_refunds,
    api_returns,
    api_rooms,
    api_staff,
    api_vouchers,
    api_waitlist,
    api_wallet,
    ops,
    pages,
    seller_affiliates,
    seller_finance,
    seller_join,
    seller_pages,
    seller_products,
    seller_promotions,
    seller_returns,
    seller_staff,
    ws,
)
from web.access import LoggedStarlette
from web.auth import GuestSessions, SellerAuth, identify_for
from web.cookies import SellerSessions
from web.http import (
    JSONResponse,
    domain_error_handler,
    unavailable_handler,
    unexpected_error_handler,
)
from web.mails import went_live_mail
from web.metrics import Metrics
from web.return_views import request_windows
from web.route_index import RouteIndex
from web.routing import Api
from web.services import Services
from web.settings import Settings

log = logging.getLogger("livecart.app")
# Routes are tried in this order among those whose fixed start fits the path (web/route_index.py):
# where two match, the earlier wins.
APIS: list[Api] = [
    api_checkout.api,
    api_accounts.api,
    api_addresses.api,
    api_follows.api,
    api_passkeys.api,
    api_waitlist.api,
    api_wallet.api,
    api_cart.api,
    api_vouchers.api,
    api_promotions.api,
    ops.api,
    api_catalog.api,
    api_refunds.api,  # before api_orders: its /cancel and /refund win over the generic move
    api_returns.api,
    api_finance.api,
    api_orders.api,
    api_rooms.api,
    api_affiliates.api,
    api_analytics.api,
    api_auctions.api,
    api_giveaways.api,
    api_media.api,
    api_payments.api,
    api_staff.api,
]
# Young-generation collections every 10,000 net allocations instead of 700: under a reservation
# storm the default ran the collector thousands of times a minute for almost no cyclic garbage.
GC_THRESHOLDS = (10_000, 10, 10)


def openapi_document() -> dict[str, object]:
    merged = Api()
    for api in APIS:
        merged.operations += api.operations
    return merged.openapi()


def money_terms(settings: Settings) -> MoneyTerms:
    return MoneyTerms(
        fee_bps=settings.platform_fee_bps,
        ship_by_ms=round(settings.ship_by_hours * 3_600_000),
        ship_limit_ms=round(settings.ship_limit_hours * 3_600_000),
        deliver_within_ms=round(settings.delivery_days * 86_400_000),
    )


def order_rules(svc: Services) -> OrderRules:
    return OrderRules(
        payouts=svc.payouts,
        settle_after_ms=round(svc.settings.settlement_days * 86_400_000),
        requests=request_windows(svc.settings),
    )


def pipeline_config(settings: Settings, crash: CrashPoints = NO_CRASH) -> PipelineConfig:
    return PipelineConfig(
        batch=settings.worker_batch,
        block_ms=settings.worker_block_ms,
        claim_idle_ms=settings.worker_claim_idle_ms,
        max_deliveries=settings.worker_max_deliveries,
        trim_interval_ms=settings.worker_trim_interval_ms,
        money=money_terms(settings),
        crash=crash,
    )


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        hello_timeout_s=settings.ws_hello_timeout_s,
        max_replay=settings.ws_max_replay,
        chat_lines=settings.chat_lines,
        chat_window_ms=settings.chat_window_ms,
        chat_address_rate=Rate(settings.chat_rate_per_s, settings.chat_burst),
        message_rate=settings.ws_message_rate,
        message_burst=settings.ws_message_burst,
        strikes=settings.ws_strikes,
        strike_refill=settings.ws_strike_refill,
        tick_s=settings.room_tick_s,
        report_s=settings.room_report_s,
        recent_chat=settings.room_recent_chat,
    )


def media_config(settings: Settings) -> MediaConfig:
    return MediaConfig(
        max_viewers=settings.video_max_viewers,
        connect_timeout_s=settings.webrtc_connect_timeout_s,
        publisher_grace_s=settings.video_publisher_grace_s,
        stall_s=settings.video_stall_s,
        retry_after_s=settings.video_retry_after_s,
        profile=VideoProfile(
            bitrate=settings.video_bitrate,
            keyframe_interval_s=settings.video_keyframe_interval_s,
            min_keyframe_gap_s=settings.video_min_keyframe_gap_s,
        ),
        ice_servers=ice_servers(
            settings.ice_servers, settings.turn_username, settings.turn_credential
        ),
    )


def reserve_limits(settings: Settings) -> ReserveLimits:
    return ReserveLimits(
        Rate(settings.reserve_rate_per_s, settings.reserve_burst), settings.address_hold_cap
    )


def mail_sender(settings: Settings) -> MailSender:
    if settings.mail_url:
        return SmtpSender(settings.mail_url, settings.mail_from)
    return FileSender(settings.data_dir / "mail", settings.mail_from)


def build_services(settings: Settings, crash: CrashPoints = NO_CRASH) -> Services:
    """Every service, wired; ``crash``: the crash points the crash tests install (none)."""
    assert settings.redis_url and settings.database_url and settings.secret_key
    redis = connect(
        settings.redis_url,
        wait_replicas=settings.redis_wait_replicas,
        wait_ms=settings.redis_wait_ms,
    )
    db = Database(settings.database_url)
    keys = Keyspace(settings.redis_prefix)
    shelf = ShelfStore(
        redis,
        keys,
        hold_ttl_ms=settings.hold_ttl_s * 1000,
        pay_ttl_ms=settings.pay_ttl_s * 1000,
        address_cap=settings.address_hold_cap,
    )
    live_keys = LiveKeys(settings.redis_prefix)
    rooms = RoomStore(redis, live_keys, settings.room_log_maxlen)
    # Stock changes made here nudge the deal's room on every node (decision 0048).
    push = StockPush(rooms)
    holds = HoldStore(redis, keys, reserve_limits(settings), shelf, push.deal_changed)
    pipeline = (
        OrderPipeline(redis, db, keys, pipeline_config(settings, crash))
        if settings.run_worker
        else None
    )
    batcher = ReserveBatcher(holds)
    payments = SandboxProvider(redis, keys.sandbox, settings.payment_delay_ms)
    sessions = GuestSessions(settings.signing_keys, settings.session_max_age_s)
    seller_sessions = SellerSessions(settings.signing_keys, settings.seller_session_max_age_s)
    people_keys = PeopleKeys(settings.redis_prefix)
    auth_stamps = AuthStamps(redis, people_keys)
    metrics = Metrics()
    seller_auth = SellerAuth(db, auth_stamps, metrics.seller_auth)
    limiter = RateLimiter(redis, settings.redis_prefix)
    hub = Hub(max_buffer=settings.ws_max_buffer)
    bus = RoomBus(settings.redis_url, live_keys, rooms, hub)
    till = Till(holds, payments, AttemptStore(db, keys.prefix), crash)
    auctions = Auctions(
        redis,
        live_keys,
        rooms,
        holds,
        hold_ttl_ms=settings.hold_ttl_s * 1000,
        pay_ttl_ms=settings.pay_ttl_s * 1000,
        till=till,
        crash=crash,
    )
    giveaways = Giveaways(
        redis,
        live_keys,
        rooms,
        holds,
        db,
        hold_ttl_ms=settings.hold_ttl_s * 1000,
        pay_ttl_ms=settings.pay_ttl_s * 1000,
    )
    carts = Carts(CartStore(redis, keys), Shelving(shelf), holds, batcher)
    comment_sales = CommentSales(rooms, carts, db, batcher)
    analytics = RoomAnalytics(redis, live_keys)
    gateway = Gateway(
        rooms,
        holds,
        batcher,
        hub,
        identify_for(sessions, seller_sessions, db, seller_auth),
        node_id=uuid.uuid4().hex[:12],
        config=gateway_config(settings),
        limiter=limiter,
        catch_up=bus.catch_up,
        follow=bus.follow,
        auctions=auctions,
        giveaways=giveaways,
        comment_sales=comment_sales,
        analytics=analytics,
        sweep=live_service.RoomSweep(
            db,
            settings.room_unhosted_end_s * 1000,
            settings.sweep_interval_ms,
            settings.hosted_room_ids,
        ),
    )
    bus.nudged = gateway.nudge
    mail = mail_sender(settings)
    return Services(
        mail=mail,
        news=LiveNews(db, mail, went_live_mail),
        passkey_challenges=Challenges(redis, people_keys),
        settings=settings,
        redis=redis,
        db=db,
        keys=keys,
        holds=holds,
        batcher=batcher,
        carts=carts,
        limiter=limiter,
        idempotency=IdempotencyStore(redis, keys, lease_ms=settings.checkout_lease_ms),
        payments=payments,
        till=till,
        refunds=Refunds(db, holds, payments, keys.prefix, crash),
        payouts=Payouts(db, payments, keys.prefix, crash),
        sessions=sessions,
        seller_sessions=seller_sessions,
        auth_stamps=auth_stamps,
        seller_auth=seller_auth,
        metrics=metrics,
        pipeline=pipeline,
        rooms=rooms,
        hub=hub,
        gateway=gateway,
        analytics=analytics,
        bus=bus,
        push=push,
        auctions=auctions,
        giveaways=giveaways,
        money=money_terms(settings),
        crash=crash,
    )


def build_broadcasts(svc: Services) -> Broadcasts:
    settings = svc.settings
    if settings.webrtc_addresses:
        use_host_addresses(settings.webrtc_addresses)

    async def started(room_id: int) -> None:
        async with svc.db.session() as session:
            await live_service.start_stream(session, svc.rooms, room_id)
        # No request here: the mail's links are relative unless LIVECART_PUBLIC_URL is set.
        await svc.news.room_went_live(room_id, svc.settings.public_url)

    async def ended(room_id: int, reason: str) -> None:
        await live_service.stop_stream(svc.rooms, room_id, reason)

    async def room_open(room_id: int) -> bool:
        snap = await svc.rooms.read(room_id)
        return snap is not None and snap.room["status"] != RoomStatus.ENDED

    async def failed(room_id: int, owner: str, code: str, reason: str) -> None:
        # To the creator's own connections (the studio), on whichever node they are, and kept
        # for one that joins later.
        message = {"type": "stream.failed", "code": code, "reason": reason, "ms": now_ms()}
        await svc.rooms.stream_failed(room_id, owner, message)

    lock = StreamLock(svc.rooms, ttl_s=15.0)
    return Broadcasts(media_config(settings), lock, started, ended, room_open, on_failed=failed)


def settle_heap() -> None:
    """Move everything built at startup (modules, models, schemas: most of the heap) out of the
    collector's sight and collect young objects less often. See docs/decisions/0006."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", pages.home),
        Route("/live/{room_id:id}", pages.live_room),
        Route("/orders", pages.my_orders),
        Route("/account", pages.account_page),
        Route("/account/reset", pages.account_page),
        Route("/shop/{handle}", pages.storefront),
        Route("/shop/{handle}/p/{product_id:id}", pages.product_page),
        Route("/seller", seller_pages.seller_center),
        Route("/seller/login", seller_pages.login_page, methods=["GET"]),
        Route("/seller/login", seller_pages.login, methods=["POST"]),
        Route("/seller/logout", seller_pages.logout, methods=["POST"]),
        Route("/seller/switch", seller_pages.switch, methods=["POST"]),
        Route("/seller/join/{token}", seller_join.join_page, methods=["GET"]),
        Route("/seller/join/{token}", seller_join.join, methods=["POST"]),
        Route("/seller/products", seller_products.create_product, methods=["POST"]),
        Route("/seller/rooms", seller_pages.create_room, methods=["POST"]),
        Route("/seller/orders/ship", seller_pages.ship_from_csv, methods=["POST"]),
        Route("/seller/orders/{order_id:id}/{action}", seller_pages.order_action, methods=["POST"]),
        Route("/seller/orders/{order_id:id}/{action}", seller_pages.confirm_page, methods=["GET"]),
        Route("/seller/products/{product_id:id}", seller_products.product_page, methods=["GET"]),
        Route("/seller/products/{product_id:id}", seller_products.edit_product, methods=["POST"]),
        Route("/seller/products/{product_id:id}/skus", seller_products.add_sku, methods=["POST"]),
        Route(
            "/seller/products/{product_id:id}/archive",
            seller_products.archive_product,
            methods=["POST"],
        ),
        Route(
            "/seller/products/{product_id:id}/unarchive",
            seller_products.unarchive_product,
            methods=["POST"],
        ),
        Route("/seller/deals/{deal_id:id}/stop", seller_pages.stop_deal, methods=["POST"]),
        Route(
            "/seller/requests/{request_id:id}/{action}",
            seller_returns.answer_request,
            methods=["POST"],
        ),
        Route("/seller/finance/withdraw", seller_finance.withdraw, methods=["POST"]),
        Route("/seller/finance/payout-method", seller_finance.set_payout_method, methods=["POST"]),
        Route("/seller/shipping", seller_promotions.set_shipping, methods=["POST"]),
        Route("/seller/vouchers", seller_promotions.create_voucher, methods=["POST"]),
        Route("/seller/promotions", seller_promotions.create_promotion, methods=["POST"]),
        Route(
            "/seller/promotions/{promotion_id:id}/end",
            seller_promotions.end_promotion,
            methods=["POST"],
        ),
        Route("/seller/staff/invitations", seller_staff.invite, methods=["POST"]),
        Route(
            "/seller/staff/invitations/{invitation_id:id}/withdraw",
            seller_staff.withdraw,
            methods=["POST"],
        ),
        Route("/seller/staff/members/{member_id:id}/role", seller_staff.set_role, methods=["POST"]),
        Route("/seller/staff/members/{member_id:id}/remove", seller_staff.remove, methods=["POST"]),
        Route("/seller/staff/tokens", seller_staff.create_token, methods=["POST"]),
        Route(
            "/seller/staff/tokens/{token_id:id}/revoke", seller_staff.revoke_token, methods=["POST"]
        ),
        Route("/seller/affiliates/plans", seller_affiliates.create_plan, methods=["POST"]),
        Route(
            "/seller/affiliates/plans/{plan_id:id}/end",
            seller_affiliates.end_plan,
            methods=["POST"],
        ),
        Route("/studio/{room_id:id}", seller_pages.studio),
        Mount("/static", StaticFiles(packages=[("web", "static")]), name="static"),
    ]


async def fault_500(request: Request) -> Response:
    """A bug on demand (bench routes only), so tests can see what a 500 looks like."""
    raise RuntimeError("fault injected by GET /api/fault/500")


def create_app(settings: Settings, crash: CrashPoints = NO_CRASH) -> Starlette:
    """The app; ``crash``: the crash points the crash tests install (production: none)."""
    openapi = openapi_document()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = build_services(settings, crash)
        await svc.holds.install()
        await svc.limiter.install()
        await svc.rooms.install()
        await svc.auctions.install()
        await svc.giveaways.install()
        app.state.services = svc
        app.state.broadcasts = broadcasts = build_broadcasts(svc)
        settle_heap()
        stop = asyncio.Event()
        lease_ms = settings.checkout_lease_ms
        # Before the sweeper runs: an attempt charged before a crash commits while its hold is
        # still paying, instead of being expired and refunded.
        try:
            await reconcile_once(svc.till, svc.idempotency, lease_ms)
        except Exception:  # the timer below tries again; serving must not wait for it
            log.exception("reconciling payment attempts at start-up failed")
        tasks = [
            asyncio.create_task(
                reconcile_forever(
                    svc.till, svc.idempotency, lease_ms, settings.reconcile_interval_s, stop
                )
            ),
            asyncio.create_task(sweep_forever(svc.holds, svc.db, settings.sweep_interval_ms, stop)),
            asyncio.create_task(
                sweep_orders_forever(
                    svc.refunds, lease_ms, settings.money_interval_s, stop, order_rules(svc)
                )
            ),
            asyncio.create_task(svc.bus.run(stop)),
            # The one loop that moves rooms along: watched ones every tick, every open one
            # each sweep round (docs/decisions/0025).
            asyncio.create_task(svc.gateway.run_ticker(stop)),
            # Counts flushed to Redis each second; ended rooms' written to SQL (decision 0044).
            asyncio.create_task(analytics_sql.run(svc.db, svc.analytics, stop)),
        ]
        # Serve only once this node hears the rooms: a viewer joining earlier could miss events.
        await asyncio.wait_for(svc.bus.ready.wait(), 10)
        if svc.pipeline is not None:
            tasks.append(asyncio.create_task(svc.pipeline.run(stop)))
        try:
            yield
        finally:
            peers = broadcasts.peers
            await broadcasts.close()
            log.info("media stopped: %d peer connections closed", peers)
            await svc.gateway.forget_node()
            with contextlib.suppress(Exception):
                await svc.analytics.flush()  # what this node counted last is not lost
            await svc.news.close()
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await svc.push.nudges.close()
            await svc.gateway.nudges.close()
            await svc.redis.aclose()
            await svc.db.close()

    routes: list[BaseRoute] = []
    if settings.bench_routes:
        # First, so the benchmark baseline pays no routing the measured endpoints do not pay.
        routes.append(Route("/api/noop", ops.noop, methods=["POST"]))
        routes.append(
            Route("/api/bench/rooms/{room_id:id}/echo", api_rooms.bench_echo, methods=["POST"])
        )
    room_sockets = WebSocketRoute("/ws/rooms/{room_id:id}", ws.room_socket)
    routes.append(room_sockets)
    for api in APIS:
        routes += api.routes()
    routes.append(Route("/openapi.json", openapi_json))
    routes += page_routes()
    if settings.bench_routes:  # last: the reserve benchmark's path pays nothing for it
        routes.append(Route("/api/fault/500", fault_500))
    return LoggedStarlette(
        access_log=settings.access_log,
        log_format=settings.log_format,
        routes=[RouteIndex(routes)],
        sockets_first=[room_sockets],
        lifespan=lifespan,
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: pages.http_error,
            RedisConnectionError: unavailable_handler,
            RedisTimeoutError: unavailable_handler,
            # A cluster between a primary's failure and its replica's promotion.
            ClusterError: unavailable_handler,
            RedisClusterException: unavailable_handler,
            TryAgainError: unavailable_handler,
            Exception: unexpected_error_handler,
        },
    )
