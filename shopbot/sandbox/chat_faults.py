"""The sandbox page's fault switches: one flip as the page sends it (`Fault`), how it reaches the Fragment and
Heleket emulators, and the switch states the side panel shows (`Switches`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypedDict

import msgspec
from starlette.exceptions import HTTPException

from shopbot.sandbox.fragment import (
    ENDPOINTS,
    UNKNOWN_USER_ANSWERS,
    Endpoint,
    FragmentEmulator,
    UnknownUserAnswer,
    is_endpoint,
    is_unknown_user_answer,
)
from shopbot.sandbox.fragment_orders import PREMIUM_MONTHS
from shopbot.sandbox.fragment_wire import STATUS_OF
from shopbot.sandbox.heleket import HeleketEmulator
from shopbot.sandbox.heleket_invoices import USD_PRICES

# Bounds of the price switches: wide enough for any real market, narrow enough to catch a typo.
MAX_TON_PER_STAR = Decimal(1)
MAX_TON_PER_PREMIUM = Decimal(1000)
MAX_TON_USD = Decimal(100_000)
ARMED_SHOWN = 10  # the one-shot faults the panel lists, newest first


class Switch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """One flip of a fault switch; `kind` says which."""


class FragmentFails(Switch, frozen=True, tag="fragment_fail"):
    endpoint: str
    code: str
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    resign: bool = False  # TRANSFER_NOT_SENT only: "it can never land, sign it again"


class FragmentDrops(Switch, frozen=True, tag="fragment_drop"):
    endpoint: str
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    after_processing: bool = False  # the request takes effect (an order made, a payment sent); the answer is lost


class FragmentLandsLate(Switch, frozen=True, tag="fragment_lands_late"):
    """The next payment leaves the wallet, but the service sees it land only `seconds` later."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=600)]


class FragmentSlowLookups(Switch, frozen=True, tag="fragment_slow_lookups"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class FragmentUnknownUsers(Switch, frozen=True, tag="fragment_unknown_users"):
    """How the service says nobody has a username (`@nobody_here` in the sandbox)."""

    answer: str


class FragmentWrongOrder(Switch, frozen=True, tag="fragment_wrong_order"):
    """The next create_order is answered with the newest order the service already has."""


class HeleketRateLimited(Switch, frozen=True, tag="heleket_rate_limit"):
    on: bool
    retry_after: Annotated[int, msgspec.Meta(ge=1, le=600)] = 30


class HeleketSlowInfo(Switch, frozen=True, tag="heleket_info_latency"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]


class FragmentSlow(Switch, frozen=True, tag="fragment_latency"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]


class FragmentTonCost(Switch, frozen=True, tag="fragment_ton_cost"):
    """What Fragment asks in TON for orders created from now on: per star, or for one Premium package."""

    ton: Decimal
    months: int | None = None  # None: per star; 3, 6 or 12: that Premium package


class HeleketTonRate(Switch, frozen=True, tag="heleket_ton_rate"):
    """Heleket's USD price of one TON in its exchange-rate lists; null takes TON out of them (no rate)."""

    usd: Decimal | None


class WebhooksFail(Switch, frozen=True, tag="heleket_fail_webhooks"):
    count: Annotated[int, msgspec.Meta(ge=0, le=100)]


class WebhooksTwice(Switch, frozen=True, tag="heleket_duplicate_webhooks"):
    on: bool


Fault = (
    FragmentFails
    | FragmentDrops
    | FragmentSlow
    | FragmentLandsLate
    | FragmentSlowLookups
    | FragmentUnknownUsers
    | FragmentWrongOrder
    | FragmentTonCost
    | WebhooksFail
    | WebhooksTwice
    | HeleketRateLimited
    | HeleketSlowInfo
    | HeleketTonRate
)
FAULTS: msgspec.json.Decoder[Fault] = msgspec.json.Decoder(Fault)


class Switches(TypedDict):
    """What the switches are set to now, as the side panel shows them; `armed` lists one-shot faults."""

    fragment_latency: float
    heleket_duplicate_webhooks: bool
    fragment_unknown_users: str
    heleket_rate_limited: bool
    heleket_info_latency: float
    fragment_ton_per_star: str
    fragment_premium_ton: dict[str, str]  # months -> TON
    heleket_ton_usd: str | None
    armed: list[str]


def fail(status: int, detail: str) -> HTTPException:
    """The error the page's API answers with: `{"error": detail}` and this status."""
    return HTTPException(status, detail)


def checked_amount(value: Decimal, ceiling: Decimal, what: str) -> Decimal:
    """A positive, finite amount up to `ceiling`, or a 400 that says so."""
    if not value.is_finite() or value <= 0 or value > ceiling:
        raise fail(400, f"{what} must be a positive amount up to {ceiling}, not {value}")
    return value


def known_endpoint(name: str) -> Endpoint:
    """The Fragment endpoint so named, or a 400 that lists them."""
    if not is_endpoint(name):
        raise fail(400, f"no Fragment endpoint {name!r}; one of {', '.join(ENDPOINTS)}")
    return name


def known_unknown_user_answer(name: str) -> UnknownUserAnswer:
    """The way of saying "nobody has that username" so named, or a 400 that lists them."""
    if not is_unknown_user_answer(name):
        raise fail(400, f"no answer {name!r}; one of {', '.join(UNKNOWN_USER_ANSWERS)}")
    return name


class FaultSwitches:
    """The fault switches over one sandbox's Fragment and Heleket emulators; `state` is what the panel shows."""

    def __init__(self, *, fragment: FragmentEmulator, heleket: HeleketEmulator) -> None:
        self.fragment, self.heleket = fragment, heleket
        self.state: Switches = {
            "fragment_latency": fragment.latency,
            "heleket_duplicate_webhooks": False,
            "fragment_unknown_users": fragment.unknown_user_answer,
            "heleket_rate_limited": False,
            "heleket_info_latency": 0.0,
            "fragment_ton_per_star": str(fragment.pricing.ton_per_star),
            "fragment_premium_ton": self._premium_ton(),
            "heleket_ton_usd": str(USD_PRICES["TON"]),
            "armed": [],
        }

    def arm(self, what: str) -> None:
        """List a one-shot fault on the panel, newest first."""
        self.state["armed"] = [what, *self.state["armed"]][:ARMED_SHOWN]

    def flip(self, fault: Fault) -> None:
        """Set the emulators as the fault says, or refuse it with a 400 (409: nothing to answer with yet)."""
        match fault:
            case FragmentFails():
                self._fail_fragment(fault)
            case FragmentDrops(endpoint=endpoint, times=times, after_processing=after):
                self.fragment.drop_next(known_endpoint(endpoint), times=times, after_processing=after)
                self.arm(
                    f"{endpoint}: {'answer lost after it took effect' if after else 'connection dropped'} ×{times}"
                )
            case FragmentSlow(seconds=seconds):
                self.fragment.latency = seconds
                self.state["fragment_latency"] = seconds
            case FragmentLandsLate(seconds=seconds):
                self.fragment.lands_late_next(after=seconds)
                self.arm(f"next payment lands {seconds:g} s late")
            case FragmentSlowLookups(seconds=seconds, times=times):
                self.fragment.delay_next("user_info", seconds, times=times)
                self.arm(f"user_info: {seconds:g} s late ×{times}")
            case FragmentUnknownUsers(answer=answer):
                self.fragment.unknown_user_answer = known_unknown_user_answer(answer)
                self.state["fragment_unknown_users"] = answer
            case FragmentWrongOrder():
                self._misanswer_next_order()
            case FragmentTonCost():
                self._set_ton_cost(fault)
            case HeleketRateLimited(on=on, retry_after=retry_after):
                self.heleket.rate_limit(on, retry_after=str(retry_after))
                self.state["heleket_rate_limited"] = on
            case HeleketSlowInfo(seconds=seconds):
                self.heleket.set_latency("/v1/payment/info", seconds)
                self.state["heleket_info_latency"] = seconds
            case HeleketTonRate(usd=usd):
                self._set_ton_rate(usd)
            case WebhooksFail(count=count):
                self.heleket.fail_webhooks(count)
                self.arm(f"Heleket webhooks: next {count} attempts fail")
            case WebhooksTwice(on=on):
                self.heleket.duplicate_webhooks(on)
                self.state["heleket_duplicate_webhooks"] = on

    def _fail_fragment(self, fault: FragmentFails) -> None:
        endpoint, code, resign = known_endpoint(fault.endpoint), fault.code, fault.resign
        if code not in STATUS_OF:
            raise fail(400, f"no Fragment error code {code!r}; one of {', '.join(sorted(STATUS_OF))}")
        if resign and code != "TRANSFER_NOT_SENT":
            raise fail(400, "resign goes with TRANSFER_NOT_SENT only")
        self.fragment.fail_next(endpoint, code, times=fault.times, resign=resign)
        self.arm(f"{endpoint}: {code}{' (sign again)' if resign else ''} ×{fault.times}")

    def _misanswer_next_order(self) -> None:
        newest = max(self.fragment.orders.values(), key=lambda order: order.created_at, default=None)
        if newest is None:
            raise fail(409, "the Fragment service has no order yet to answer with; buy something first")
        self.fragment.answer_next_create_with(newest.id)
        self.arm(f"create_order: answered with old order {newest.id}")

    def _set_ton_cost(self, fault: FragmentTonCost) -> None:
        months = fault.months
        if months is None:
            self.fragment.set_ton_cost(per_star=checked_amount(fault.ton, MAX_TON_PER_STAR, "a star's TON cost"))
            self.state["fragment_ton_per_star"] = str(self.fragment.pricing.ton_per_star)
            return
        if months not in PREMIUM_MONTHS:
            raise fail(400, f"Premium comes in {', '.join(map(str, PREMIUM_MONTHS))} months, not {months}")
        ton = checked_amount(fault.ton, MAX_TON_PER_PREMIUM, f"the TON cost of {months} months of Premium")
        self.fragment.set_ton_cost(premium={months: ton})
        self.state["fragment_premium_ton"] = self._premium_ton()

    def _set_ton_rate(self, usd: Decimal | None) -> None:
        if usd is not None:
            usd = checked_amount(usd, MAX_TON_USD, "TON's USD price")
        self.heleket.set_usd_price("TON", usd)
        self.state["heleket_ton_usd"] = None if usd is None else str(usd)

    def _premium_ton(self) -> dict[str, str]:
        return {str(months): str(ton) for months, ton in sorted(self.fragment.pricing.premium_ton.items())}
