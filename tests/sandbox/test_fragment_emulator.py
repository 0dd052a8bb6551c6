"""The Fragment API v3 emulator, driven by the unmodified fragment-api-lib client over real HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from fragment_api_lib.exceptions import FragmentAPIError
from fragment_api_lib.v3 import FRAGMENT_ADDRESSES, OPERATOR_FEE_WALLETS, FragmentAPIv3, is_valid_mnemonic
from fragment_api_lib.v3.address import store_address
from fragment_api_lib.v3.cell import Cell, begin_cell, cell_from_b64
from fragment_api_lib.v3.keys import key_pair_from_mnemonic
from fragment_api_lib.v3.proof import proof_payload, ton_proof_signature
from fragment_api_lib.v3.wallet import wallet_address

from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.fragment_ton import comment_of, read_external
from shopbot.sandbox.fragment_wire import STATUS_OF
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of

T = TypeVar("T")
SEED = throwaway_mnemonic()
COOKIES = "stel_ssid=sandbox; stel_dt=-180; stel_token=t0ken; stel_ton_token=ton-t0ken"
RECIPIENT = "alice_stars"
TON = 10**9


@dataclass
class Fragment:
    emulator: FragmentEmulator
    base_url: str

    def client(
        self,
        *,
        wallet_type: str = "v4r2",
        cookies: str | None = COOKIES,
        seed: list[str] = SEED,
        timeout: float = 10.0,
        external_ttl_seconds: int = 120,
        fund: int = 20 * TON,
        **trust: Any,
    ) -> FragmentAPIv3:
        """A library client for a wallet holding `fund` nanotons (added on each call); trust extends the cap."""
        api = FragmentAPIv3(
            seed,
            wallet_type=wallet_type,
            fragment_cookies=cookies,
            base_url=self.base_url,
            trust={"max_ton_per_order": 50.0, **trust},
            external_ttl_seconds=external_ttl_seconds,
            timeout=timeout,
        )
        self.emulator.fund(api.address, fund)
        return api

    def balance(self, api: FragmentAPIv3) -> int:
        return self.emulator.wallet(api.address).balance_nano

    def submits(self) -> list[int | None]:
        return [call.status for call in self.emulator.calls if call.endpoint == "submit"]


@pytest.fixture
async def fragment() -> AsyncIterator[Fragment]:
    emulator = FragmentEmulator()
    emulator.add_user(RECIPIENT, "Alice Stars")
    emulator.add_user("@bob_premium", "Bob", premium=True)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_fragment_emulator, emulator)
        yield Fragment(emulator, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()


async def call(fn: Callable[[], T]) -> T:
    """The library is synchronous: run it in a worker thread, as the shop does."""
    return await anyio.to_thread.run_sync(fn)


async def failure(fn: Callable[[], object]) -> FragmentAPIError:
    with pytest.raises(FragmentAPIError) as caught:
        await anyio.to_thread.run_sync(fn)
    return caught.value


def legs_total(created: dict[str, Any]) -> int:
    return sum(int(message["amount"]) for message in created["payment"]["messages"])


# --- seeds, sign-in, wallets ---------------------------------------------------------------------------------


def test_a_throwaway_seed_passes_tons_checksum_and_gives_the_librarys_address() -> None:
    words = throwaway_mnemonic()
    assert len(words) == 24 and is_valid_mnemonic(words) and words != SEED
    for wallet_type in ("v4r2", "v5r1"):
        assert wallet_address_of(words, wallet_type) == FragmentAPIv3(words, wallet_type=wallet_type).address


@pytest.mark.parametrize("wallet_type", ["v4r2", "v5r1"])
async def test_sign_in_proves_the_wallet_and_the_server_names_the_same_address(
    fragment: Fragment, wallet_type: str
) -> None:
    api = fragment.client(wallet_type=wallet_type, fund=3 * TON)
    assert await call(api.auth)
    info = await call(api.wallet_info)
    assert (info["address"], info["state"], info["seqno"], info["balance_nano"]) == (
        api.address,
        "uninit",
        0,
        str(3 * TON),
    )
    assert (await call(api.config))["fee_wallet"] == OPERATOR_FEE_WALLETS[0]
    await call(api.revoke)
    assert (await call(api.wallet_info))["address"] == api.address  # the library signs in again by itself


async def test_a_wrong_wallet_type_is_another_empty_wallet(fragment: Fragment) -> None:
    funded = fragment.client(wallet_type="v4r2")
    wrong = fragment.client(wallet_type="v5r1", fund=0)
    assert wrong.address != funded.address
    info = await call(wrong.wallet_info)
    assert (info["address"], info["balance_nano"], info["state"]) == (wrong.address, "0", "uninit")
    error = await failure(lambda: wrong.buy("stars", RECIPIENT, 50))
    assert error.error_code == "INSUFFICIENT_BALANCE" and fragment.emulator.payments == []


async def test_expired_or_revoked_auth_keys_get_401_until_the_client_signs_in_again(fragment: Fragment) -> None:
    api = fragment.client()
    await call(api.auth)
    fragment.emulator.expire_auth_keys()
    error = await failure(api.wallet_info)
    assert (error.status, error.error_code) == (401, "UNAUTHORIZED")
    assert (await failure(api.wallet_info)).status == 401  # the library never re-authenticates by itself
    await call(api.auth)
    fragment.emulator.fail_next("wallet_info", status=401)
    assert (await failure(api.wallet_info)).error_code == "UNAUTHORIZED"
    assert (await failure(api.wallet_info)).status == 401  # the injected 401 ended that key too
    await call(api.auth)
    assert (await call(api.wallet_info))["seqno"] == 0


async def test_a_proof_is_bound_to_its_nonce_cookies_domain_and_key(fragment: Fragment) -> None:
    key, other = key_pair_from_mnemonic(SEED), key_pair_from_mnemonic(throwaway_mnemonic())
    wallet = wallet_address("v4r2", key.public_key)
    async with httpx.AsyncClient(base_url=fragment.base_url, trust_env=False) as http:

        async def sign_in(
            *,
            signer: Any = key,
            cookies: str = COOKIES,
            sent_cookies: str = COOKIES,
            domain: str = "127.0.0.1",
            nonce: str | None = None,
        ) -> tuple[httpx.Response, str]:
            nonce = nonce or (await http.get("/v3/auth/challenge")).json()["nonce"]
            payload, now = proof_payload(nonce, cookies), int(time.time())
            signature = ton_proof_signature(signer, wallet, domain, now, payload)
            body = {
                "public_key": key.public_key.hex(),
                "wallet_type": "v4r2",
                "fragment_cookies": sent_cookies,
                "proof": {
                    "timestamp": now,
                    "domain": domain,
                    "payload": payload,
                    "signature": base64.b64encode(signature).decode(),
                },
            }
            return await http.post("/v3/auth", json=body), nonce

        answer, nonce = await sign_in()
        assert answer.status_code == 200 and answer.json()["wallet"]["address"] == wallet.to_friendly(bounceable=False)
        for refused, _ in [
            await sign_in(nonce=nonce),
            await sign_in(sent_cookies="stel_ssid=other"),
            await sign_in(domain="api.fragment-api.net"),
            await sign_in(signer=other),
        ]:
            assert (refused.status_code, refused.json()["error_code"]) == (401, "INVALID_PROOF")


async def test_user_info_finds_known_users_only(fragment: Fragment) -> None:
    api = fragment.client()
    found = await call(lambda: api.user_info("https://t.me/Alice_Stars"))
    assert found == {"success": True, "found": True, "username": RECIPIENT, "name": "Alice Stars", "photo": None}
    missing = await call(lambda: api.user_info("@nobody_here"))
    assert (missing["found"], missing["username"], missing["name"]) == (False, "nobody_here", None)


@pytest.mark.parametrize("code", ["USER_NOT_FOUND", "RECIPIENT_NOT_FOUND"])
async def test_the_emulator_can_say_nobody_has_a_username_as_a_404_error_even_when_it_finds_anyone(
    fragment: Fragment, code: str
) -> None:
    """The real service has been seen answering an unknown username with an error, not `found: false`; the
    sandbox (which finds every name) can still show a name nobody has, in either shape."""
    emulator = fragment.emulator
    emulator.any_user = True
    emulator.add_unknown_user("@nobody_here")
    api = fragment.client()
    assert (await call(lambda: api.user_info("nobody_here")))["found"] is False
    assert (await call(lambda: api.user_info("somebody_else")))["found"] is True  # any_user still finds the rest
    emulator.unknown_user_answer = code  # type: ignore[assignment]
    refused = await failure(lambda: api.user_info("@nobody_here"))
    assert (refused.status, refused.error_code, str(refused)) == (404, code, "No Telegram users found.")
    assert (await call(lambda: api.user_info(RECIPIENT)))["found"] is True


# --- buying ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wallet_type", ["v4r2", "v5r1"])
@pytest.mark.parametrize(
    ("product", "amount", "kyc"),
    [("stars", 50, True), ("stars", 2500, False), ("premium", 3, True), ("premium", 12, False)],
)
async def test_buy_pays_exactly_the_orders_legs_and_deploys_the_wallet(
    fragment: Fragment, wallet_type: str, product: str, amount: int, kyc: bool
) -> None:
    api = fragment.client(wallet_type=wallet_type, cookies=COOKIES if kyc else None)
    before = fragment.balance(api)
    result = await call(lambda: api.buy(product, "@" + RECIPIENT, amount, kyc=kyc, idempotency_key="shop:1"))
    [order] = result["orders"]
    assert result["success"] and (order["status"], order["product"], order["amount"]) == ("success", product, amount)
    [payment] = fragment.emulator.payments
    assert order["txid"] == result["transaction_hash"] == payment.transaction_hash
    assert payment.order_ids == (order["id"],) and payment.deployed_wallet and payment.seqno == 0
    assert fragment.balance(api) == before - payment.amount_nano
    assert payment.amount_nano == sum(leg.amount_nano for leg in payment.legs) == round(Decimal(order["cost"]) * TON)
    assert [leg.role for leg in payment.legs] == (["fragment", "fee"] if kyc else ["middle"])
    item = f"{amount} Telegram Stars" if product == "stars" else f"Telegram Premium for {amount} months"
    assert payment.legs[0].comment == f"{item} \n\nRef#{order['ref_id']}"
    assert fragment.emulator.wallet(api.address).state == "active"
    assert (await call(api.wallet_info))["seqno"] == 1


async def test_create_prepare_submit_step_by_step(fragment: Fragment) -> None:
    api = fragment.client(wallet_type="v5r1")
    created = await call(lambda: api.create_order("stars", RECIPIENT, 1_000, idempotency_key="shop:2"))
    fragment_leg, fee_leg = created["payment"]["messages"]
    assert fragment_leg["address"] in FRAGMENT_ADDRESSES and fee_leg["address"] == OPERATOR_FEE_WALLETS[0]
    assert int(fragment_leg["amount"]) == 4_400_000_000 and int(fee_leg["amount"]) == 88_000_000  # 2 %
    assert created["payment"]["valid_until"] > time.time() and created["recipient_id"]
    # Each payload is a real BoC of one comment cell, in Fragment's wording.
    text = comment_of(cell_from_b64(fragment_leg["payload"]))
    assert text == f"1000 Telegram Stars \n\nRef#{created['order']['ref_id']}"
    prepared = await call(lambda: api.prepare([created]))
    assert (prepared["seqno"], prepared["state_init"]) == (0, True)
    result = await call(lambda: api.submit(prepared, [created]))
    [payment] = fragment.emulator.payments
    assert result["success"] and payment.normalized_hash == prepared["normalized_hash"]
    # The next payment finds the wallet deployed: no state_init, the next seqno; two orders in one message.
    batch = [await call(lambda: api.create_order("premium", RECIPIENT, 6)) for _ in range(2)]
    prepared = await call(lambda: api.prepare(batch))
    assert (prepared["seqno"], prepared["state_init"]) == (1, False)
    before = fragment.balance(api)
    await call(lambda: api.submit(prepared, batch))
    assert fragment.emulator.payments[-1].order_ids == tuple(c["order"]["id"] for c in batch)
    assert before - fragment.balance(api) == sum(legs_total(c) for c in batch)
    listed = await call(lambda: api.list_orders(limit=2))
    assert [o["id"] for o in listed] == [c["order"]["id"] for c in reversed(batch)]


async def test_the_same_idempotency_key_is_the_same_order_and_buy_never_pays_twice(fragment: Fragment) -> None:
    api = fragment.client()
    first = await call(lambda: api.buy("stars", RECIPIENT, 50, idempotency_key="shop:3"))
    again = await call(lambda: api.buy("stars", RECIPIENT, 50, idempotency_key="shop:3"))
    assert again == {"success": True, "orders": [first["orders"][0]], "idempotent": True}
    fragment.emulator.drop_next("create_order", after_processing=True)
    assert (
        await failure(lambda: api.create_order("stars", RECIPIENT, 100, idempotency_key="shop:4"))
    ).error_code == "NETWORK_ERROR"
    created = await call(lambda: api.create_order("stars", RECIPIENT, 100, idempotency_key="shop:4"))
    assert [o.idempotency_key for o in fragment.emulator.orders.values()] == ["shop:3", "shop:4"]
    assert created["order"]["status"] == "created" and len(fragment.emulator.payments) == 1


@pytest.mark.parametrize(("amount", "product"), [(49, "stars"), (1_000_001, "stars"), (4, "premium")])
async def test_amounts_outside_fragments_limits_are_refused(fragment: Fragment, amount: int, product: str) -> None:
    api = fragment.client()
    assert (await failure(lambda: api.create_order(product, RECIPIENT, amount))).error_code == "INVALID_AMOUNT"


async def test_orders_the_service_refuses_on_creation(fragment: Fragment) -> None:
    api = fragment.client(cookies=None)
    assert (await failure(lambda: api.buy("stars", RECIPIENT, 50))).error_code == "FRAGMENT_COOKIES_REQUIRED"
    fragment.emulator.no_kyc_available = False
    assert (await failure(lambda: api.buy("stars", RECIPIENT, 50, kyc=False))).error_code == "NO_KYC_UNAVAILABLE"
    fragment.emulator.no_kyc_available = True
    assert (await failure(lambda: api.buy("stars", "nobody_here", 50, kyc=False))).error_code == "USER_NOT_FOUND"
    assert (await failure(lambda: api.buy("premium", "bob_premium", 3, kyc=False))).error_code == "PREMIUM_ACTIVE"
    no_kyc_usdt = await failure(lambda: api.buy("stars", RECIPIENT, 50, kyc=False, payment_method="usdt_ton"))
    assert no_kyc_usdt.error_code == "NO_KYC_USDT_UNAVAILABLE"
    assert fragment.emulator.payments == [] and fragment.emulator.orders == {}


# --- what the library refuses to sign --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee_percent", "trust"),
    [(Decimal("6"), {}), (Decimal("2"), {"max_fee_percent": 1.5}), (Decimal("2"), {"max_ton_per_order": 0.2})],
)
async def test_a_fee_or_total_above_the_librarys_caps_is_never_signed(
    fragment: Fragment, fee_percent: Decimal, trust: dict[str, float]
) -> None:
    fragment.emulator.pricing.fee_percent = fee_percent
    api = fragment.client(**trust)
    assert (await failure(lambda: api.buy("stars", RECIPIENT, 50))).error_code == "UNTRUSTED_PAYMENT"
    assert fragment.submits() == [] and fragment.emulator.payments == []


# --- what the service refuses, and injected errors ------------------------------------------------------------------


async def test_a_stale_seqno_or_a_forged_message_is_refused_and_nothing_is_paid(fragment: Fragment) -> None:
    api = fragment.client()
    first, second = [await call(lambda: api.create_order("stars", RECIPIENT, 50)) for _ in range(2)]
    stale = await call(lambda: api.prepare([second]))  # signed for seqno 0 ...
    await call(lambda: api.pay_orders([first]))  # ... which this payment uses up
    error = await failure(lambda: api.submit(stale, [second]))
    assert error.error_code == "INVALID_SIGNED_MESSAGE"
    assert error.details["reason"] == "signed for seqno 0 but the wallet is at 1"
    fresh = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    prepared = await call(lambda: api.prepare([fresh]))
    forged = {**prepared, "boc": _flip_signature_bit(prepared["boc"])}
    assert (await failure(lambda: api.submit(forged, [fresh]))).error_code == "INVALID_SIGNED_MESSAGE"
    other_orders = {**prepared, "orders": [second["order"]["id"]]}
    assert (await failure(lambda: api.submit(other_orders))).error_code == "INVALID_SIGNED_MESSAGE"
    assert [p.order_ids for p in fragment.emulator.payments] == [(first["order"]["id"],)]
    assert (await call(lambda: api.submit(prepared, [fresh])))["success"]  # the genuine one still pays


def _flip_signature_bit(boc: str) -> str:
    """The same v4r2 external with one bit of its signature (the body's first bit) flipped."""
    external = read_external(boc)
    bits = (1 - external.body.bits[0], *external.body.bits[1:])
    builder = begin_cell().store_uint(0b10, 2)
    store_address(builder, None)
    store_address(builder, external.destination)
    builder.store_coins(0)
    if external.state_init is not None:
        builder.store_bit(1).store_bit(1).store_ref(external.state_init)
    else:
        builder.store_bit(0)
    return builder.store_bit(1).store_ref(Cell(bits, external.body.refs)).end_cell().to_b64()


async def test_a_first_payment_must_deploy_the_wallet(fragment: Fragment) -> None:
    api = fragment.client()
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    bare = await call(lambda: api.prepare([created], resign={"seqno": 0, "state_init": False}))
    error = await failure(lambda: api.submit(bare))
    assert error.error_code == "INVALID_SIGNED_MESSAGE" and "not deployed" in error.details["reason"]
    assert fragment.emulator.wallet(api.address).state == "uninit" and fragment.emulator.payments == []


async def test_an_expired_signature_is_not_sent_and_may_be_re_signed(fragment: Fragment) -> None:
    api = fragment.client(external_ttl_seconds=0)  # every signature is dead on arrival
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    error = await failure(lambda: api.pay_orders([created]))
    assert (error.error_code, error.details["resign"]) == ("TRANSFER_NOT_SENT", True)
    assert fragment.submits() == [502] * 4 and fragment.emulator.payments == []  # the library re-signed 3 times


async def test_not_enough_ton_then_a_top_up_pays_the_same_order(fragment: Fragment) -> None:
    api = fragment.client(fund=TON // 10)
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    error = await failure(lambda: api.pay_orders([created]))
    assert (error.error_code, error.details["released"]) == ("INSUFFICIENT_BALANCE", 1)
    fragment.emulator.fund(api.address, TON)
    assert (await call(lambda: api.pay_orders([created])))["success"]
    assert fragment.balance(api) == TON // 10 + TON - legs_total(created)


async def test_an_expired_order_is_refused_and_its_key_makes_a_new_order(fragment: Fragment) -> None:
    api = fragment.client()
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50, idempotency_key="shop:5"))
    prepared = await call(lambda: api.prepare([created]))
    fragment.emulator.expire_orders()
    assert (await failure(lambda: api.submit(prepared, [created]))).error_code == "ORDER_EXPIRED"
    gone = await call(lambda: api.get_order(created["order"]["id"]))
    assert (gone["order"]["status"], gone["payment"]) == ("expired", None)
    again = await call(lambda: api.create_order("stars", RECIPIENT, 50, idempotency_key="shop:5"))
    assert again["order"]["id"] != created["order"]["id"] and again["order"]["status"] == "created"
    assert fragment.emulator.payments == []


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [
        ("submit", "INSUFFICIENT_BALANCE"),
        ("submit", "ORDER_EXPIRED"),
        ("submit", "INVALID_SIGNED_MESSAGE"),
        ("create_order", "FRAGMENT_COOKIES_REQUIRED"),
        ("create_order", "NO_KYC_UNAVAILABLE"),
    ],
)
async def test_an_injected_error_surfaces_as_its_code_and_nothing_is_paid(
    fragment: Fragment, endpoint: str, code: str
) -> None:
    api = fragment.client()
    fragment.emulator.fail_next(endpoint, code)  # type: ignore[arg-type]
    error = await failure(lambda: api.buy("stars", RECIPIENT, 50))
    assert (error.error_code, error.status) == (code, STATUS_OF[code])
    assert fragment.emulator.payments == [] and fragment.balance(api) == 20 * TON


async def test_transfer_failed_moves_the_seqno_but_no_money(fragment: Fragment) -> None:
    api = fragment.client()
    fragment.emulator.fail_next("submit", "TRANSFER_FAILED")
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50, idempotency_key="shop:6"))
    error = await failure(lambda: api.pay_orders([created]))
    assert error.error_code == "TRANSFER_FAILED" and error.details["orders"][0]["status"] == "failed"
    assert fragment.balance(api) == 20 * TON and fragment.emulator.payments == []
    assert fragment.emulator.wallet(api.address).seqno == 1
    retry = await call(lambda: api.buy("stars", RECIPIENT, 50, idempotency_key="shop:6"))  # a new order
    assert retry["success"] and retry["orders"][0]["id"] != created["order"]["id"]


@pytest.mark.parametrize("settle", ["success", "failed"])
async def test_an_ambiguous_transfer_stays_processing_until_it_settles(fragment: Fragment, settle: str) -> None:
    api = fragment.client()
    fragment.emulator.ambiguous_next(settle=settle)  # type: ignore[arg-type]
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    prepared = await call(lambda: api.prepare([created]))
    assert (await failure(lambda: api.submit(prepared, [created]))).error_code == "TRANSFER_AMBIGUOUS"
    order_id = created["order"]["id"]
    assert (await call(lambda: api.get_order(order_id)))["order"]["status"] == "processing"
    assert fragment.balance(api) == 20 * TON - legs_total(created)  # the money left
    assert (await failure(lambda: api.submit(prepared))).error_code == "TRANSFER_AMBIGUOUS"  # resubmitted: no-op
    assert (await call(lambda: api.buy("stars", RECIPIENT, 50)))["success"]  # another order still pays
    fragment.emulator.settle(order_id)
    assert (await call(lambda: api.get_order(order_id)))["order"]["status"] == settle
    [payment] = fragment.emulator.payments_for(order_id)
    assert payment.outcome == ("success" if settle == "success" else "refunded")
    paid_other = sum(p.amount_nano for p in fragment.emulator.payments if order_id not in p.order_ids)
    refunded = legs_total(created) if settle == "failed" else 0
    assert fragment.balance(api) == 20 * TON - legs_total(created) - paid_other + refunded


async def test_an_ambiguous_transfer_can_settle_by_itself(fragment: Fragment) -> None:
    api = fragment.client()
    fragment.emulator.ambiguous_next(after=0.2)
    assert (await failure(lambda: api.buy("premium", RECIPIENT, 3))).error_code == "TRANSFER_AMBIGUOUS"
    await anyio.sleep(0.3)
    [order] = await call(api.list_orders)
    assert order["status"] == "success" and order["txid"]


async def test_not_sent_with_resign_is_re_signed_with_the_same_seqno(fragment: Fragment) -> None:
    api = fragment.client()
    fragment.emulator.fail_next("submit", "TRANSFER_NOT_SENT", resign=True, times=2)
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    prepared = await call(lambda: api.prepare([created]))
    # Without the orders the library may not re-sign: it raises at once, and nothing was sent.
    error = await failure(lambda: api.submit(prepared))
    assert (error.error_code, error.details["resign"]) == ("TRANSFER_NOT_SENT", True)
    assert (await call(lambda: api.submit(prepared, [created])))["success"]
    # Re-signed with the SAME seqno (within the same second even byte for byte: Ed25519 is deterministic).
    [payment] = fragment.emulator.payments
    assert payment.seqno == prepared["seqno"] and fragment.submits() == [502, 502, 200]


@pytest.mark.parametrize("code", ["TRANSFER_NOT_SENT", "TON_SERVICE_UNAVAILABLE"])
async def test_not_sent_or_ton_unavailable_is_retried_by_the_library(fragment: Fragment, code: str) -> None:
    api = fragment.client()
    fragment.emulator.fail_next("submit", code)
    assert (await call(lambda: api.buy("stars", RECIPIENT, 50)))["success"]  # after the library's 2 s pause
    assert fragment.submits() == [STATUS_OF[code], 200]
    assert len(fragment.emulator.payments) == 1


# --- transport faults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("after_processing", [False, True])
async def test_a_dropped_submit_is_resubmitted_and_pays_once(fragment: Fragment, after_processing: bool) -> None:
    api = fragment.client()
    fragment.emulator.drop_next("submit", after_processing=after_processing)
    result = await call(lambda: api.buy("stars", RECIPIENT, 50))  # the library retries the same BoC after 2 s
    assert result["success"] and result.get("duplicate", False) is after_processing
    assert fragment.submits() == [None, 200] and len(fragment.emulator.payments) == 1


async def test_a_5xx_after_the_payment_went_out_is_safe_to_resubmit(fragment: Fragment) -> None:
    api = fragment.client()
    fragment.emulator.fail_next("submit", status=500, after_processing=True)
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    prepared = await call(lambda: api.prepare([created]))
    error = await failure(lambda: api.submit(prepared, [created]))
    assert (error.status, error.error_code) == (500, None)  # not retried by the library: outcome unknown
    assert len(fragment.emulator.payments) == 1
    again = await call(lambda: api.submit(prepared))
    assert again["success"] and again["duplicate"] and len(fragment.emulator.payments) == 1


async def test_slow_answers_time_out_and_latency_applies_to_every_request(fragment: Fragment) -> None:
    api = fragment.client(timeout=0.3)
    await call(api.auth)
    fragment.emulator.delay_next("wallet_info", 1.0)
    assert (await failure(api.wallet_info)).error_code == "NETWORK_ERROR"
    fragment.emulator.fail_next("get_order", status=502)
    error = await failure(lambda: api.get_order("whatever"))
    assert (error.status, error.error_code) == (502, None)
    fragment.emulator.latency = 0.05
    started = time.monotonic()
    await call(api.wallet_info)
    assert 0.05 <= time.monotonic() - started < 0.3


async def test_submit_outcome_unknown_then_the_stored_message_pays_once(fragment: Fragment) -> None:
    """The library's full retry path: 7 lost answers, 2+4+...+12 = 42 s of its own sleeps."""
    api = fragment.client()
    created = await call(lambda: api.create_order("stars", RECIPIENT, 50))
    prepared = await call(lambda: api.prepare([created]))
    fragment.emulator.drop_next("submit", after_processing=True)
    fragment.emulator.drop_next("submit", times=6)
    error = await failure(lambda: api.submit(prepared, [created]))
    assert error.error_code == "SUBMIT_OUTCOME_UNKNOWN" and error.details["prepared"] == prepared
    again = await call(lambda: api.submit(error.details["prepared"]))
    assert again["success"] and again["duplicate"]
    assert fragment.submits() == [None] * 7 + [200]
    assert len(fragment.emulator.payments_for(created["order"]["id"])) == 1
