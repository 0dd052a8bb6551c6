"""What the REST API's tests share: the users, the signing secret, tokens and a client on an app."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from shopbot.config.schema import ApiConfig, Config
from shopbot.config.secret import Secret
from shopbot.web.api_auth import mint_token

SECRET = "s" * 64  # long enough for the HS512 forgery in test_api.py, too
ANN, BOB, EVE = 101, 102, 103  # EVE exists but has no money
ALL = ["balance:read", "transactions:read"]


def config(secret: str = SECRET) -> Config:
    return Config(api=ApiConfig(jwt_secret=Secret(secret)))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin(scopes: list[str] = ALL) -> dict[str, str]:
    return auth(mint_token(SECRET, scopes=scopes, user_id=None, ttl_seconds=60))


async def open_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")
