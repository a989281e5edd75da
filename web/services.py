"""Everything a request handler needs, built once in the app's lifespan and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from starlette.requests import Request

from checkout.batcher import ReserveBatcher
from checkout.cart import Carts
from checkout.checkout import Till
from checkout.faults import NO_CRASH, CrashPoints
from checkout.holds import HoldStore
from checkout.idempotency import IdempotencyStore
from checkout.keys import Keyspace
from checkout.limits import RateLimiter
from checkout.order_store import MoneyTerms
from checkout.payments import SandboxProvider
from checkout.payouts import Payouts
from checkout.pipeline import OrderPipeline
from checkout.refunds import Refunds
from kernel.db import Database
from live.analytics import RoomAnalytics
from live.auctions import Auctions
from live.bus import RoomBus
from live.gateway import Gateway
from live.giveaways import Giveaways
from live.hub import Hub
from live.news import LiveNews
from live.push import StockPush
from live.store import RoomStore
from people.auth_stamps import AuthStamps
from people.challenges import Challenges
from people.mail import MailSender
from web.auth import GuestSessions, SellerAuth
from web.cookies import SellerSessions
from web.metrics import Metrics
from web.settings import Settings


@dataclass
class Services:
    settings: Settings
    redis: Redis
    db: Database
    keys: Keyspace
    holds: HoldStore
    batcher: ReserveBatcher
    carts: Carts
    limiter: RateLimiter
    idempotency: IdempotencyStore
    payments: SandboxProvider
    till: Till
    refunds: Refunds
    payouts: Payouts
    sessions: GuestSessions
    seller_sessions: SellerSessions
    auth_stamps: AuthStamps
    seller_auth: SellerAuth
    metrics: Metrics
    pipeline: OrderPipeline | None
    rooms: RoomStore
    hub: Hub
    gateway: Gateway
    analytics: RoomAnalytics
    bus: RoomBus
    push: StockPush
    auctions: Auctions
    giveaways: Giveaways
    mail: MailSender
    news: LiveNews
    passkey_challenges: Challenges
    # The money settings as orders take them (the ship-by times, when delivery is expected).
    money: MoneyTerms = field(default_factory=MoneyTerms)
    # The crash points the crash tests install (production: none).
    crash: CrashPoints = NO_CRASH


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
