"""Heleket's signatures: request bodies as sent, webhooks re-encoded the way PHP's json_encode writes them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from decimal import Decimal
from typing import Any

import msgspec

_decode_json = msgspec.json.Decoder().decode


class WebhookRejected(Exception):
    """A webhook body that must not be trusted; `reason` is short and machine-usable."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def sign_body(body: bytes, api_key: str) -> str:
    """md5(base64(body) + key) in lowercase hex, over exactly the bytes that go on the wire."""
    return hashlib.md5(base64.b64encode(body) + api_key.encode()).hexdigest()


def php_json_encode(value: Any, *, unescaped_unicode: bool = True) -> bytes:
    """The bytes of PHP's json_encode($value, JSON_UNESCAPED_UNICODE) (plain json_encode when False)."""
    parts: list[str] = []
    _encode(value, parts, not unescaped_unicode)
    return "".join(parts).encode()


def verify_webhook(raw: bytes, api_key: str) -> dict[str, Any]:
    """The decoded webhook, `sign` included, once its signature checks out; WebhookRejected otherwise."""
    try:
        payload = _decode_json(raw)
    except msgspec.DecodeError as error:
        raise WebhookRejected("not_json", str(error)) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("not_an_object", f"the body is a JSON {type(payload).__name__}")
    received = payload.get("sign")
    if not isinstance(received, str) or not received:
        raise WebhookRejected("missing_signature")
    # Heleket signs its payload before adding `sign` and writes it with json_encode; decoding and re-encoding
    # the PHP way gives those bytes back whether the wire used raw UTF-8 or \u escapes (ref §4.2, §9.2), which
    # cutting `sign` out of the raw body would not.
    unsigned = {key: value for key, value in payload.items() if key != "sign"}
    try:
        expected = sign_body(php_json_encode(unsigned), api_key)
    except (TypeError, ValueError) as error:
        raise WebhookRejected("not_json", str(error)) from None
    if not hmac.compare_digest(expected.encode(), received.encode("utf-8", "replace")):
        raise WebhookRejected("bad_signature")
    return payload


def _encode(value: Any, out: list[str], escape_unicode: bool) -> None:
    # bool before int: True is an int in Python, "true" in JSON.
    if value is None or value is True or value is False:
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, str):
        out.append(_php_string(value, escape_unicode))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_php_float(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_php_string(str(key), escape_unicode))
            out.append(":")
            _encode(item, out, escape_unicode)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, escape_unicode)
        out.append("]")
    else:
        raise TypeError(f"php_json_encode cannot encode {type(value).__name__}")


def _php_string(text: str, escape_unicode: bool) -> str:
    # Python escapes the same control characters as PHP (\b \f \n \r \t, else lowercase \u00xx); PHP also
    # escapes '/' always and U+2028/U+2029 even under JSON_UNESCAPED_UNICODE.
    encoded = json.dumps(text, ensure_ascii=escape_unicode).replace("/", "\\/")
    if not escape_unicode:
        encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    # A lone surrogate cannot come from a PHP string; fail here rather than sign something PHP never could.
    encoded.encode()
    return encoded


def _php_float(number: float) -> str:
    """PHP's json_encode float format (serialize_precision -1): shortest digits, `1.0e-5`, `129` for 129.0."""
    if not math.isfinite(number):
        raise ValueError("PHP cannot json_encode INF or NAN")
    sign, digit_tuple, exponent = Decimal(repr(number)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    # decpt as zend_dtoa reports it: the value is 0.<digits> * 10**decpt.
    decpt = len(digit_tuple) + exponent if digits != "0" else 1
    minus = "-" if sign else ""
    # php_gcvt with mode 0 uses 17 as its precision for the switch to exponential form.
    if decpt < -3 or decpt > 17:
        power = decpt - 1
        mantissa = digits[0] + "." + (digits[1:] or "0")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power)}"
    if decpt <= 0:
        return f"{minus}0.{'0' * -decpt}{digits}"
    whole = digits[:decpt].ljust(decpt, "0")
    fraction = digits[decpt:]
    return f"{minus}{whole}.{fraction}" if fraction else f"{minus}{whole}"
