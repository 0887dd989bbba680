"""Bearer-token middleware (pure ASGI, so mounted static files are protected too) that also
counts requests by route and status for ``/metrics``."""

from __future__ import annotations

import hmac
import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.metrics import ServerMetrics

__all__ = ["BearerAuth", "route_label"]

_ROUTES = ("/v1/predictions", "/v1/labels", "/v1/errors", "/v1/heartbeat", "/v1/drift", "/v1/health",
           "/metrics", "/healthz", "/reports", "/v1/cloudevents",
           "/v1/models", "/v1/references", "/v1/review", "/v1/retrains", "/v1/ingest", "/v1/exports",
           "/v1/reports", "/v1/checks")
#: paths that also take the token as the ``token`` query parameter: payload loggers (KServe's
#: agent, Seldon's executor) cannot send an Authorization header, only a URL
_QUERY_TOKEN_PATHS = ("/v1/cloudevents",)


def route_label(path: str) -> str:
    """A bounded label for ``path`` (no per-file or per-id cardinality)."""
    for route in _ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path but ``open_paths``.

    With ``token=None`` everything is open. The comparison is constant-time.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, metrics: ServerMetrics,
                 open_paths: tuple[str, ...] = ("/healthz",)) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._metrics = metrics
        self._open = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        status = {"code": 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            if self._token is not None and scope["path"] not in self._open and not self._authorized(scope):
                await self._deny(counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            self._metrics.requests.labels(route=route, status=str(status["code"])).inc()

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if not header and scope["path"] in _QUERY_TOKEN_PATHS:
            for part in scope.get("query_string", b"").split(b"&"):
                name, _, value = part.partition(b"=")
                if name == b"token":
                    header = b"Bearer " + unquote_to_bytes(value)
                    break
        scheme, _, credentials = header.partition(b" ")
        # compare even on a wrong scheme, so timing does not tell the two failures apart
        ok = hmac.compare_digest(credentials.strip(), self._token)
        return ok and scheme.lower() == b"bearer"

    @staticmethod
    async def _deny(send: Send) -> None:
        body = json.dumps({"detail": "missing or invalid bearer token"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
