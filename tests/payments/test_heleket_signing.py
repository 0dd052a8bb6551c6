"""Heleket signatures against the vectors PHP itself produced (ref §1.2, §1.3, §9.2)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from shopbot.payments.heleket_wire import decode_webhook
from shopbot.payments.signing import WebhookRejected, php_json_encode, sign_body, verify_webhook

KEY = "TEST_PAYMENT_KEY_0123456789abcdef"
SIGN = "93f9564096e27436361735dff7892a03"
# The signed string of ref §9.2, byte for byte as PHP 8.2 json_encode(..., JSON_UNESCAPED_UNICODE) wrote it.
SIGNED = (
    '{"type":"payment","uuid":"62f88b36-a9d5-4fa6-aa26-e040c3dbf26d","order_id":"stars-1001","amount":"3.00000000",'
    '"payment_amount":"3.00000000","payment_amount_usd":"3.00","merchant_amount":"2.94000000",'
    '"commission":"0.06000000","is_final":true,"status":"paid",'
    '"from":"UQBYi6Dro99vjr3-9pt3zi_ssa0NJpswspRM8e2wZu47lord","wallet_address_uuid":null,"network":"ton",'
    '"currency":"USD","payer_currency":"USDT","payer_amount":"3.00000000","payer_amount_exchange_rate":"1.00000000",'
    '"additional_data":"user=42; pack=100⭐ Звёзды https:\\/\\/t.me\\/x","transfer_id":null,'
    '"convert":{"to_currency":"USDT","commission":null,"rate":"1.00000000","amount":"2.94000000"},'
    '"txid":"abc\\/def+ghi="}'
)
BODY_A = SIGNED[:-1] + f',"sign":"{SIGN}"}}'  # raw UTF-8 on the wire
BODY_B = BODY_A.replace("⭐ Звёзды", "\\u2b50 \\u0417\\u0432\\u0451\\u0437\\u0434\\u044b")  # \u escapes


def test_the_signed_string_of_the_vector_is_676_bytes_and_hashes_to_its_sign() -> None:
    assert len(SIGNED.encode()) == 676
    assert sign_body(SIGNED.encode(), KEY) == SIGN


@pytest.mark.parametrize("body", [BODY_A, BODY_B], ids=["raw-utf8", "unicode-escapes"])
def test_a_heleket_webhook_verifies_in_either_wire_encoding(body: str) -> None:
    payload = verify_webhook(body.encode(), KEY)
    assert payload["sign"] == SIGN
    assert payload["additional_data"] == "user=42; pack=100⭐ Звёзды https://t.me/x"
    assert list(payload)[-2:] == ["txid", "sign"]  # key order kept, which the signature depends on


def test_php_json_encode_reproduces_both_wire_bodies_byte_for_byte() -> None:
    payload = verify_webhook(BODY_A.encode(), KEY)
    assert php_json_encode(payload) == BODY_A.encode()
    assert php_json_encode(payload, unescaped_unicode=False) == BODY_B.encode()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"amount":"3.00000000"', '"amount":"30.00000000"'),
        ('"status":"paid"', '"status":"paid_over"'),
        ('"is_final":true', '"is_final":false'),
        ('"txid":"abc\\/def+ghi="', '"txid":"abc\\/def+ghi=","extra":"x"'),
        ("Звёзды", "Звезды"),
    ],
    ids=["amount", "status", "is_final", "extra-field", "additional-data"],
)
def test_a_tampered_webhook_is_rejected_as_a_bad_signature(old: str, new: str) -> None:
    tampered = BODY_A.replace(old, new, 1)
    assert tampered != BODY_A
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(tampered.encode(), KEY)
    assert caught.value.reason == "bad_signature"


def test_the_wrong_key_is_a_bad_signature() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(BODY_A.encode(), KEY + "x")
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (SIGNED.encode(), "missing_signature"),
        (BODY_A.replace(SIGN, "").encode(), "missing_signature"),
        (BODY_A.replace(f'"{SIGN}"', "12345").encode(), "missing_signature"),
        (b"status=paid&sign=abc", "not_json"),
        (b'{"sign": "abc"', "not_json"),
        (b"", "not_json"),
        (b'[{"sign":"93f9564096e27436361735dff7892a03"}]', "not_an_object"),
        (b'"paid"', "not_an_object"),
    ],
)
def test_unusable_bodies_are_rejected_with_a_machine_usable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(body, KEY)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("body", "sign"),
    [
        (b"", "84db78cc10b2c5405e71ebe324c9cee7"),
        (b"{}", "98d64b49c7ac18a45450d16890d9bfda"),
        (
            b'{"amount":"1.50","currency":"USD","order_id":"stars-1001",'
            b'"url_callback":"https://bot.example.com/heleket/webhook","lifetime":3600}',
            "e586ad892828d6a1352a941e624ad5ac",
        ),
        (
            b'{"amount":"1.50","currency":"USD","order_id":"stars-1001",'
            b'"url_callback":"https:\\/\\/bot.example.com\\/heleket\\/webhook","lifetime":3600}',
            "6767f2a989a18bc90319bf0ad6a7394d",
        ),
    ],
    ids=["empty", "empty-object", "create", "create-php-slashes"],
)
def test_request_signatures_match_the_reference_vectors(body: bytes, sign: str) -> None:
    assert sign_body(body, KEY) == sign


@pytest.mark.parametrize(
    ("value", "php"),
    [
        ({"a": "x/y", "b": "\u2028", "c": '\t\x01"\\'}, b'{"a":"x\\/y","b":"\\u2028","c":"\\t\\u0001\\"\\\\"}'),
        (
            [129.0, 1e-5, 0.1, -0.0, 1e17, 1e16, 0.0001, 1.5e-7],
            b"[129,1.0e-5,0.1,-0,1.0e+17,10000000000000000,0.0001,1.5e-7]",
        ),
        (
            {"t": True, "f": False, "n": None, "i": -42, "nested": {"z": [], "a": {}}},
            b'{"t":true,"f":false,"n":null,"i":-42,"nested":{"z":[],"a":{}}}',
        ),
    ],
    ids=["string-escapes", "floats", "scalars-and-nesting"],
)
def test_php_json_encode_follows_php_rather_than_python(value: object, php: bytes) -> None:
    assert php_json_encode(value) == php


def test_php_json_encode_refuses_what_php_never_signs() -> None:
    with pytest.raises(TypeError):
        php_json_encode({"amount": Decimal("1.5")})
    with pytest.raises(ValueError, match="INF or NAN"):
        php_json_encode(float("nan"))


def test_the_verified_vector_decodes_to_decimals_and_re_encodes_unchanged() -> None:
    webhook = decode_webhook(verify_webhook(BODY_B.encode(), KEY))
    assert (webhook.status, webhook.is_final, webhook.order_id) == ("paid", True, "stars-1001")
    assert webhook.amount == Decimal("3") and isinstance(webhook.merchant_amount, Decimal)
    assert webhook.convert is not None and webhook.convert.rate == Decimal("1")
    assert (webhook.from_, webhook.wallet_address_uuid) == ("UQBYi6Dro99vjr3-9pt3zi_ssa0NJpswspRM8e2wZu47lord", None)
    # Field order and Decimal strings survive, so the struct can stand for the signed payload.
    assert php_json_encode(msgspec.to_builtins(webhook)) == BODY_A.encode()


def test_decode_webhook_names_missing_and_mistyped_fields() -> None:
    payload = verify_webhook(BODY_A.encode(), KEY)
    with pytest.raises(WebhookRejected, match="missing required fields: uuid, status") as caught:
        decode_webhook({k: v for k, v in payload.items() if k not in ("uuid", "status")})
    assert caught.value.reason == "bad_fields"
    with pytest.raises(WebhookRejected, match=r"\$\.amount"):
        decode_webhook({**payload, "amount": "three"})
    with pytest.raises(WebhookRejected, match=r"\$\.is_final"):
        decode_webhook({**payload, "is_final": "yes"})
    unknown = decode_webhook({**payload, "new_field_heleket_added": 1})
    assert unknown.uuid == payload["uuid"]
