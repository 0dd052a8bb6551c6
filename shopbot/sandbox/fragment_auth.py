"""Sign-in for the Fragment emulator: one-time nonces, the ton_proof check, and Bearer auth keys."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass, field

from fragment_api_lib.v3.address import Address
from fragment_api_lib.v3.wallet import wallet_address

from shopbot.sandbox.fragment_ton import signature_valid, ton_proof_digest
from shopbot.sandbox.fragment_wire import ApiFailure, SignIn

PAYLOAD_PREFIX = "fragment-api/v3:"
NONCE_TTL_SECONDS = 300.0
PROOF_SKEW_SECONDS = 300  # how far the proof's timestamp may be from the server's clock, either way


@dataclass(frozen=True)
class Session:
    """What an auth key stands for: one wallet (address, type, key) and the cookies it signed in with."""

    wallet: Address
    wallet_type: str
    public_key: bytes
    cookies: str | None
    expires_at: float


@dataclass
class Sessions:
    """Issued nonces and live auth keys."""

    ttl: float
    _nonces: dict[str, float] = field(default_factory=dict)  # nonce -> expiry
    _keys: dict[str, Session] = field(default_factory=dict)

    def challenge(self, now: float) -> str:
        self._nonces = {nonce: due for nonce, due in self._nonces.items() if due > now}
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = now + NONCE_TTL_SECONDS
        return nonce

    def sign_in(self, request: SignIn, domain: str | None, now: float) -> tuple[str, Session]:
        """Check the ton_proof and issue a key; every failure is INVALID_PROOF (401)."""
        if request.wallet_type not in ("v4r2", "v5r1"):
            raise ApiFailure("INVALID_WALLET_TYPE", f"wallet_type must be v4r2 or v5r1, not {request.wallet_type!r}")
        public_key = _public_key(request.public_key)
        proof = request.proof
        nonce, _, cookies_hash = proof.payload.removeprefix(PAYLOAD_PREFIX).partition(":")
        # A nonce is spent by any attempt, so a captured proof can not be tried again.
        if not proof.payload.startswith(PAYLOAD_PREFIX) or self._nonces.pop(nonce, 0.0) <= now:
            raise ApiFailure("INVALID_PROOF", "unknown, used or expired nonce: get a new challenge")
        cookies = request.fragment_cookies or None
        if cookies_hash != (hashlib.sha256(cookies.encode()).hexdigest() if cookies else ""):
            raise ApiFailure("INVALID_PROOF", "the proof does not cover these fragment_cookies")
        if proof.domain != domain:
            raise ApiFailure("INVALID_PROOF", f"the proof is for {proof.domain!r}, this is {domain!r}")
        if abs(now - proof.timestamp) > PROOF_SKEW_SECONDS:
            raise ApiFailure("INVALID_PROOF", "the proof's timestamp is too far from now")
        wallet = wallet_address(request.wallet_type, public_key)
        digest = ton_proof_digest(wallet, proof.domain, proof.timestamp, proof.payload)
        if not signature_valid(public_key, digest, _b64(proof.signature)):
            raise ApiFailure("INVALID_PROOF", "the ton_proof signature does not verify")
        key = secrets.token_urlsafe(32)
        session = Session(
            wallet=wallet,
            wallet_type=request.wallet_type,
            public_key=public_key,
            cookies=cookies,
            expires_at=now + self.ttl,
        )
        self._keys[key] = session
        return key, session

    def session(self, authorization: str | None, now: float) -> Session:
        """The live session of a `Bearer <key>` header; UNAUTHORIZED (401) otherwise."""
        scheme, _, key = (authorization or "").partition(" ")
        session = self._keys.get(key) if scheme.lower() == "bearer" else None
        if session is None or session.expires_at <= now:
            self._keys.pop(key, None)
            raise ApiFailure("UNAUTHORIZED")
        return session

    def revoke(self, authorization: str | None) -> None:
        self._keys.pop((authorization or "").partition(" ")[2], None)

    def expire_all(self) -> None:
        self._keys.clear()


def _public_key(value: str) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ApiFailure("INVALID_PROOF", "public_key must be 32 bytes of hex")
    return key


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""
