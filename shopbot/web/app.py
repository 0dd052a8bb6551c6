"""The Starlette application: its routes, and JSON errors instead of HTML pages or tracebacks."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.metrics import Metrics
from shopbot.web.health import HealthChecks, detailed_endpoint, liveness

log = logging.getLogger(__name__)


def build_web_app(health: HealthChecks, metrics: Metrics, extra_routes: list[Route] | None = None,
                  middleware: list[Middleware] | None = None) -> Starlette:
    """The shop's web app; later areas add their routes (webhooks, API) through extra_routes."""

    async def render_metrics(_: Request) -> Response:
        await metrics.refresh()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        metrics.errors.labels("web").inc()
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; it was logged"}, status_code=500)

    routes = [
        Route("/health", liveness, methods=["GET"]),
        Route("/health/detailed", detailed_endpoint(health), methods=["GET"]),
        Route("/metrics", render_metrics, methods=["GET"]),
        *(extra_routes or []),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: on_http_error, Exception: on_unexpected_error},
    )
