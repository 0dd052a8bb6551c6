"""The Starlette applications: the public one (webhooks, health, API) with JSON errors instead of HTML pages or
tracebacks, and the private one Prometheus scrapes on its own listener."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.db.pool import OUTAGE_ERRORS, OUTAGE_RETRY_SECONDS, DatabaseBusyError
from shopbot.metrics import Metrics
from shopbot.web.health import HealthChecks, detailed_endpoint, liveness

log = logging.getLogger(__name__)


def build_web_app(
    health: HealthChecks,
    metrics: Metrics,
    extra_routes: list[Route] | None = None,
    middleware: list[Middleware] | None = None,
) -> Starlette:
    """The shop's public web app: health, plus the routes the wiring passes in extra_routes (webhooks, API).

    It has no /metrics: a scraper on the public port gets 404, and the figures stay on the metrics listener."""

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def on_database_busy(_: Request, exc: Exception) -> Response:
        metrics.errors.labels("database_busy").inc()  # the pool logged it, with what to do
        return JSONResponse({"error": "busy; try again shortly"}, status_code=503, headers={"Retry-After": "5"})

    async def on_database_out_of_reach(request: Request, exc: Exception) -> Response:
        # Heleket retries a 503, and the shop recovers on its own once the database is back: one warning, no
        # traceback (a handler here, not on Exception, which Starlette re-raises to the server to log).
        metrics.errors.labels("database_unavailable").inc()
        log.warning(
            "%s %s: the database is out of reach (%s: %s)", request.method, request.url.path, type(exc).__name__, exc
        )
        return JSONResponse(
            {"error": "the database is out of reach; try again shortly"},
            status_code=503,
            headers={"Retry-After": str(OUTAGE_RETRY_SECONDS)},
        )

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        metrics.errors.labels("web").inc()
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; it was logged"}, status_code=500)

    routes = [
        Route("/health", liveness, methods=["GET"]),
        Route("/health/detailed", detailed_endpoint(health), methods=["GET"]),
        *(extra_routes or []),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPException: on_http_error,
            DatabaseBusyError: on_database_busy,
            **dict.fromkeys(OUTAGE_ERRORS, on_database_out_of_reach),
            Exception: on_unexpected_error,
        },
    )


def build_metrics_app(metrics: Metrics) -> Starlette:
    """Only /metrics, for the private listener ([metrics] host and port); anything else is 404."""

    async def render_metrics(_: Request) -> Response:
        await metrics.refresh()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return Starlette(
        routes=[Route("/metrics", render_metrics, methods=["GET"])], exception_handlers={HTTPException: on_http_error}
    )
