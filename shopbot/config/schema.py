"""The configuration schema: one frozen struct per `shopbot.toml` section.

Every field has a safe default, so an empty file is a valid (if not yet useful) configuration;
`shopbot.toml` at the repository root documents each key. Secrets are `Secret`s and each may
instead come from a file named by its `*_file` twin.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from shopbot.config.secret import Secret

Positive = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
EMPTY = Secret("")


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every section: immutable, and an unknown key is an error."""


class TelegramConfig(Section, frozen=True):
    token: Secret = EMPTY
    token_file: str = ""
    api_base: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_secret: Secret = EMPTY
    webhook_secret_file: str = ""
    poll_timeout: Annotated[int, msgspec.Meta(ge=0, le=50)] = 30
    max_concurrent_updates: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    admin_ids: tuple[int, ...] = ()


class DatabaseConfig(Section, frozen=True):
    url: Secret = EMPTY
    url_file: str = ""
    embedded_dir: str = "./var/postgres"
    pool_min: PositiveInt = 2
    pool_max: PositiveInt = 10
    statement_timeout: Positive = 10.0
    connect_timeout: Positive = 10.0
    acquire_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0


class RedisConfig(Section, frozen=True):
    url: Secret = EMPTY
    url_file: str = ""
    retry_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0


class WebConfig(Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    public_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""


class MetricsConfig(Section, frozen=True):
    # Prometheus scrapes /metrics here, not on the public web port: loopback unless a scraper in another
    # container needs it (compose sets 0.0.0.0, published on the host's loopback only). 0: a free port (tests).
    host: str = "127.0.0.1"
    port: Port = 9464


PREMIUM_MONTHS = ("3", "6", "12")


class ShopConfig(Section, frozen=True):
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3,5}$")] = "USD"
    # Amounts are positive: checked in load.check_consistency (msgspec cannot bound a Decimal).
    min_topup: Decimal = Decimal("1.00")
    max_topup: Decimal = Decimal("1000.00")
    # Unpaid, unexpired top-up invoices one user may have open at once; a new one is refused past it.
    max_open_invoices: PositiveInt = 3
    star_price: Decimal = Decimal("0.02")
    min_stars: Annotated[int, msgspec.Meta(ge=50)] = 50
    max_stars: Annotated[int, msgspec.Meta(ge=50, le=1_000_000)] = 1_000_000
    topup_presets: tuple[Decimal, ...] = (Decimal("5"), Decimal("10"), Decimal("25"), Decimal("50"))
    star_packages: tuple[int, ...] = (50, 100, 250, 500, 1000, 2500)
    support_contact: str = ""
    premium_prices: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"3": Decimal("14.99"), "6": Decimal("19.99"), "12": Decimal("35.99")}
    )


class LogConfig(Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "text", "json"] = "auto"


class SupervisorConfig(Section, frozen=True):
    max_restarts: PositiveInt = 5
    restart_window: Positive = 60.0
    backoff_initial: Positive = 0.5
    backoff_max: Positive = 30.0


class ShutdownConfig(Section, frozen=True):
    grace_seconds: Positive = 10.0


class HeleketConfig(Section, frozen=True):
    base_url: str = "https://api.heleket.com"
    merchant_uuid: str = ""
    api_key: Secret = EMPTY
    api_key_file: str = ""
    lifetime: Annotated[int, msgspec.Meta(ge=300, le=43200)] = 3600
    currencies: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ("31.133.220.8",)
    poll_seconds: Annotated[float, msgspec.Meta(ge=30)] = 60.0
    overpayment: Literal["credit_invoice_amount", "credit_paid_amount"] = "credit_invoice_amount"
    underpayment: Literal["hold_for_operator", "credit_paid_amount"] = "hold_for_operator"


# Messages one signed external of each wallet type carries (fragment-api-lib's MAX_MESSAGES), and the legs one
# order's payment has: a KYC order pays Fragment and the service's fee, a no-KYC order one middle leg.
WALLET_MESSAGES = {"v4r2": 4, "v5r1": 255}


def most_batch_orders(wallet_type: str, kyc: bool) -> int:
    """How many orders one payment from this wallet can carry: its message limit over the legs per order."""
    return WALLET_MESSAGES[wallet_type] // (2 if kyc else 1)


class FragmentConfig(Section, frozen=True):
    base_url: str = "https://api.fragment-api.net"
    seed_phrase: Secret = EMPTY
    seed_phrase_file: str = ""
    wallet_type: Literal["v4r2", "v5r1"] = "v4r2"
    kyc: bool = True
    cookies: Secret = EMPTY
    cookies_file: str = ""
    max_ton_per_order: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    max_fee_percent: Annotated[float, msgspec.Meta(ge=0, le=5)] = 5.0
    request_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    payment_ttl_seconds: Annotated[int, msgspec.Meta(ge=5, le=300)] = 120
    landing_margin_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 60.0
    # Queued orders paid with one signed payment, at most: 1 pays them one by one, "max" as many as the wallet
    # carries (most_batch_orders); a number above that is refused.
    batch_orders: Annotated[int, msgspec.Meta(ge=1, le=255)] | Literal["max"] = "max"
    lookup_clients: Annotated[int, msgspec.Meta(ge=1, le=20)] = 8
    lookup_wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 3.0
    lookup_timeout: Annotated[float, msgspec.Meta(gt=0, le=120)] = 15.0
    lookup_cache_seconds: Annotated[float, msgspec.Meta(ge=0, le=600)] = 60.0
    low_balance_ton: Decimal = Decimal("5")
    wallet_check_seconds: Annotated[float, msgspec.Meta(ge=10)] = 300.0
    cookie_refresh_interval: Annotated[float, msgspec.Meta(ge=60)] = 3600.0
    login_url: str = "https://fragment.com"
    browser_profile_dir: str = "./var/fragment-browser"
    chromium_path: str = ""

    @property
    def orders_per_payment(self) -> int:
        """Queued orders one payment pays at most: batch_orders, or all the wallet carries."""
        most = most_batch_orders(self.wallet_type, self.kyc)
        return most if self.batch_orders == "max" else min(self.batch_orders, most)

    def __post_init__(self) -> None:
        most = most_batch_orders(self.wallet_type, self.kyc)
        if self.batch_orders != "max" and self.batch_orders > most:
            legs = "KYC orders (two messages each)" if self.kyc else "no-KYC orders (one message each)"
            raise ValueError(
                f"fragment.batch_orders: {self.batch_orders} is more than one payment can carry: a "
                f"{self.wallet_type} wallet sends {WALLET_MESSAGES[self.wallet_type]} messages at once, so at most "
                f"{most} {legs}"
            )


class RateLimitConfig(Section, frozen=True):
    messages_per_minute: PositiveInt = 30
    operations_per_minute: PositiveInt = 20
    payments_per_minute: PositiveInt = 5
    global_messages_per_minute: PositiveInt = 1800
    burst: NonNegativeInt = 5
    premium_multiplier: Positive = 2.0
    new_user_multiplier: Positive = 0.5
    new_user_window: NonNegativeInt = 86400
    webhook_per_minute: PositiveInt = 1200


class CacheConfig(Section, frozen=True):
    user_ttl: PositiveInt = 1800
    session_ttl: PositiveInt = 1800
    payment_ttl: PositiveInt = 900
    rate_limit_ttl: PositiveInt = 60
    max_entries: PositiveInt = 50_000


class CircuitBreakerConfig(Section, frozen=True):
    failure_threshold: PositiveInt = 5
    timeout: Positive = 60.0
    success_threshold: PositiveInt = 3


class ApiConfig(Section, frozen=True):
    jwt_secret: Secret = EMPTY
    jwt_secret_file: str = ""


class BroadcastConfig(Section, frozen=True):
    # Telegram allows about 30 messages a second to different users; the default leaves headroom.
    rate: Annotated[float, msgspec.Meta(gt=0, le=30)] = 25.0
    progress_seconds: Annotated[float, msgspec.Meta(ge=1, le=60)] = 3.0


class PricingConfig(Section, frozen=True):
    """What the shop charges against what Fragment costs it (amounts in [shop] currency; checked in load)."""

    # "fixed": [shop] star_price and premium_prices (or an admin's runtime prices); "auto": recomputed.
    mode: Literal["fixed", "auto"] = "fixed"
    # Never sell with less margin than this: cost <= price * (1 - min_margin_percent / 100); 0 = never below cost.
    min_margin_percent: Annotated[float, msgspec.Meta(ge=0, lt=100)] = 0.0
    # Seconds a TON rate from Heleket may be old before the guard refuses to sell blind.
    max_rate_age: Annotated[float, msgspec.Meta(ge=60, le=86_400)] = 3600.0
    # auto: seconds between recomputations of the prices.
    refresh_seconds: Annotated[float, msgspec.Meta(ge=30, le=86_400)] = 300.0
    # auto: price = cost * (1 + markup_percent / 100), rounded up to price_step (stars) or premium_step.
    markup_percent: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 20.0
    price_step: Decimal = Decimal("0.001")
    premium_step: Decimal = Decimal("0.01")
    # auto: bounds of the star price (per star) and of each Premium package's price.
    floor: Decimal = Decimal("0.01")
    ceiling: Decimal = Decimal("0.10")
    premium_floor: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"3": Decimal("8.00"), "6": Decimal("12.00"), "12": Decimal("20.00")}
    )
    premium_ceiling: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"3": Decimal("40.00"), "6": Decimal("60.00"), "12": Decimal("100.00")}
    )
    # Seconds a user's quote keeps its price; a Confirm pressed later is re-quoted, not honoured.
    quote_seconds: Annotated[float, msgspec.Meta(ge=10, le=3600)] = 120.0


class ReferralConfig(Section, frozen=True):
    """Inviters earn a share of their invitees' top-ups, as ledger bonuses (percent checked in load)."""

    # Off: /start links bind nobody, no bonus is paid, /referral says the programme is off.
    enabled: bool = True
    # Share of each credited top-up of an invitee paid to the inviter, rounded down to the cent.
    percent: Decimal = Decimal("5")
    # For how many months after the invitee joined their top-ups earn the inviter a bonus.
    months: Annotated[int, msgspec.Meta(ge=1, le=120)] = 12


class Config(Section, frozen=True):
    """The whole configuration, as `shopbot.toml` and the environment give it."""

    telegram: TelegramConfig = TelegramConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    web: WebConfig = WebConfig()
    metrics: MetricsConfig = MetricsConfig()
    shop: ShopConfig = ShopConfig()
    log: LogConfig = LogConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    heleket: HeleketConfig = HeleketConfig()
    fragment: FragmentConfig = FragmentConfig()
    pricing: PricingConfig = PricingConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    cache: CacheConfig = CacheConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    api: ApiConfig = ApiConfig()
    broadcast: BroadcastConfig = BroadcastConfig()
    referral: ReferralConfig = ReferralConfig()
