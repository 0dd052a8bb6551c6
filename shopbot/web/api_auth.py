"""JWT bearer tokens for the REST API: minting them, and checking one on a request.

HS256 only, `exp` required. Scopes are a space-separated `scope` claim. A token with a user
(`sub` as a decimal string, or an integer `user_id` claim) is user-scoped: it reads only that
user's data. A refusal says why, never echoing the token.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key is at least as long as the hash
SCOPES = ("balance:read", "transactions:read")
MAX_USER_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


class AccessDenied(Exception):
    """A request the API will not serve: 401 (who are you?) or 403 (not for you)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    """What a checked token allows."""

    scopes: frozenset[str]
    user_id: int | None  # None: any user (an operator's token)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise AccessDenied(403, f"the token lacks the {scope} scope")

    def require_user(self, user_id: int) -> None:
        if self.user_id is not None and self.user_id != user_id:
            raise AccessDenied(403, "the token may only read its own user's data")


def secret_problem(secret: str) -> str | None:
    """Why this secret cannot turn the API on, or None when it can."""
    if not secret:
        return "the API is off: set [api] jwt_secret"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"the API is off: [api] jwt_secret must be at least {MIN_SECRET_BYTES} bytes"
    return None


def mint_token(secret: str, *, scopes: list[str], user_id: int | None, ttl_seconds: int) -> str:
    """A signed token with these scopes, for this user (None: any user), valid for ttl_seconds."""
    problem = secret_problem(secret)
    if problem:
        raise ValueError(problem)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if user_id is not None and not 0 < user_id <= MAX_USER_ID:
        raise ValueError("user_id must be a positive 64-bit integer")
    now = int(time.time())
    claims: dict[str, object] = {"scope": " ".join(dict.fromkeys(scopes)), "iat": now, "exp": now + ttl_seconds}
    if user_id is not None:
        claims["sub"] = str(user_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    if not authorization:
        raise AccessDenied(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AccessDenied(401, "the Authorization header is not 'Bearer <token>'")
    return token


def check_token(token: str, secret: str) -> Grant:
    """The grant of a valid token; `AccessDenied(401)` naming what is wrong with any other."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise AccessDenied(401, "the token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AccessDenied(401, f"the token has no {exc.claim} claim") from None
    except jwt.InvalidAlgorithmError:
        raise AccessDenied(401, f"the token is not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise AccessDenied(401, "the token's signature does not verify") from None
    except jwt.DecodeError:
        raise AccessDenied(401, "the token is malformed") from None
    except jwt.InvalidTokenError as exc:
        raise AccessDenied(401, f"the token is not valid: {type(exc).__name__}") from None
    return Grant(_scopes(claims), _user(claims))


def _scopes(claims: dict[str, object]) -> frozenset[str]:
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise AccessDenied(401, "the token's scope claim is not a string")
    return frozenset(scope.split())


def _user(claims: dict[str, object]) -> int | None:
    found: set[int] = set()
    sub = claims.get("sub")
    if sub is not None:
        if not isinstance(sub, str) or not _DIGITS.fullmatch(sub) or not 0 < int(sub) <= MAX_USER_ID:
            raise AccessDenied(401, "the token's sub claim is not a user id")
        found.add(int(sub))
    user_id = claims.get("user_id")
    if user_id is not None:
        if type(user_id) is not int or not 0 < user_id <= MAX_USER_ID:
            raise AccessDenied(401, "the token's user_id claim is not a user id")
        found.add(user_id)
    if len(found) > 1:
        raise AccessDenied(401, "the token's sub and user_id claims disagree")
    return found.pop() if found else None
