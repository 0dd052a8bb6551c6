"""A fake fragment.com login, enough like the real one for the cookie refresher and `fragment login`.

Like fragment.com: `GET /` sets `stel_ssid`; a logged-in session also gets `stel_token` and
`stel_ton_token`, and each visit pushes their expiry forward (the keep-alive the refresher relies
on). Logged out, the page says `Aj.state.unAuth = true`, shows a "Log in" button and drops
`stel_token`. The button opens a popup standing in for Telegram's login window; `POST /login` is
the human confirming there (tests may set `logged_in` instead), and the popup then reloads its opener.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from shopbot.web.asgi import serve_asgi

_SCRIPT_DT = "document.cookie = 'stel_dt=-180; path=/; max-age=31536000';"

_LOGGED_IN = """<!DOCTYPE html><html><head><title>Fragment</title>
<script>window.Aj = {state: {unAuth: false}}; %s</script></head>
<body><header class="tm-header"><span class="tm-header-user">@fake_shop</span>
<button class="btn logout-link">Log out</button></header><main>Buy Telegram Stars</main></body></html>"""

_LOGGED_OUT = """<!DOCTYPE html><html><head><title>Fragment</title>
<script>window.Aj = {state: {unAuth: true}}; %s</script></head>
<body><header class="tm-header">
<button class="btn btn-primary login-link"
  onclick="window.open('/login', 'telegram_oauth', 'width=550,height=470')">Log in</button>
</header><main>Buy Telegram Stars</main></body></html>"""

_LOGIN_POPUP = """<!DOCTYPE html><html><head><title>Telegram Login</title></head><body>
<h1>Log in to Fragment</h1>
<p>Scan this code with Telegram on your phone (Settings, Devices, Link Desktop Device),
or confirm the login in the message Telegram sends you.</p>
<p class="qr"><a href="tg://login?token=%s">tg://login?token=%s</a></p>
<form method="post" action="/login"><button type="submit">Confirm</button></form>
<script>
setInterval(async () => {
  const state = await (await fetch('/login/state')).json();
  if (state.logged_in) { if (window.opener) { window.opener.location.reload(); } window.close(); }
}, 200);
</script></body></html>"""


async def _until_disconnected(request: Request) -> None:
    """Return once the client has gone away: after a GET's (empty) body, ASGI's next message is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class FakeFragmentSite:
    """The site's state; serve `app`, switch `logged_in` to expire or restore the session."""

    def __init__(
        self, *, cookie_lifetime: float = 3600.0, logged_in: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.cookie_lifetime = cookie_lifetime
        self.clock = clock
        self.visits = 0  # GET / requests: the refresher's keep-alive
        self.login_pages = 0  # Telegram login popups opened
        self.delay = 0.0  # seconds GET / takes to answer (a slow site, to stop a refresher mid-refresh)
        self.ssid = secrets.token_hex(16)
        self.token = ""
        self.ton_token = ""
        self.expires = 0
        self._logged_in = False
        self.logged_in = logged_in
        self.app = Starlette(
            routes=[
                Route("/", self._home, methods=["GET"]),
                Route("/login", self._login_page, methods=["GET"]),
                Route("/login", self._confirm_login, methods=["POST"]),
                Route("/login/state", self._login_state, methods=["GET"]),
            ]
        )

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    @logged_in.setter
    def logged_in(self, value: bool) -> None:
        # A new login is a new session: new tokens, as Fragment issues on logIn.
        if value and not self._logged_in:
            self.token = secrets.token_hex(24)
            self.ton_token = secrets.token_hex(24)
        self._logged_in = value

    @property
    def expires_at(self) -> datetime:
        """The expiry the last visit gave the session cookies."""
        return datetime.fromtimestamp(self.expires, UTC)

    async def _home(self, request: Request) -> Response:
        self.visits += 1
        if self.delay:
            # Ends early when the browser went away, so stopping the server does not cut a handler short.
            with anyio.move_on_after(self.delay):
                await _until_disconnected(request)
        if not self._logged_in:
            response = HTMLResponse(_LOGGED_OUT % _SCRIPT_DT)
            response.set_cookie("stel_ssid", self.ssid, httponly=True)
            for name in ("stel_token", "stel_ton_token"):
                if name in request.cookies:
                    response.delete_cookie(name)
            return response
        # Later on each visit by 2 s at least: Chromium corrects expiries for the server's clock by the Date
        # header, which has whole seconds, so what a browser reads is only good to a second.
        self.expires = max(int(self.clock() + self.cookie_lifetime), self.expires + 2)
        response = HTMLResponse(_LOGGED_IN % _SCRIPT_DT)
        for name, value in (("stel_ssid", self.ssid), ("stel_token", self.token), ("stel_ton_token", self.ton_token)):
            response.set_cookie(name, value, expires=self.expires_at, httponly=True)
        return response

    async def _login_page(self, request: Request) -> Response:
        self.login_pages += 1
        code = secrets.token_urlsafe(16)
        return HTMLResponse(_LOGIN_POPUP % (code, code))

    async def _confirm_login(self, request: Request) -> Response:
        self.logged_in = True
        return RedirectResponse("/login", status_code=303)

    async def _login_state(self, request: Request) -> Response:
        return JSONResponse({"logged_in": self._logged_in})


async def serve_fake_fragment(
    site: FakeFragmentSite,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the fake site until the enclosing scope is cancelled; started() gets the port."""
    await serve_asgi(site.app, host=host, port=port, graceful_seconds=1.0, task_status=task_status)
