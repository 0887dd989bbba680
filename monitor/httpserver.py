"""uvicorn as ``shiftwatch serve`` runs it: bounded connections, timeouts on every phase.

uvicorn 0.54 closes idle keep-alive connections (``timeout_keep_alive``), bounds the size of a
request head it buffers (``h11_max_incomplete_event_size``) and answers 503 past
``limit_concurrency`` connections, but has no timeout for reading a request head: a client
that connects and sends half a request line, or headers one byte a minute, holds its
connection (and a concurrency slot) forever. :class:`HeaderTimeoutProtocol` adds that timeout
to uvicorn's h11 protocol: a connection whose request head is not complete ``header_timeout_s``
after it started waiting for one is answered ``408`` and closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from monitor.settings import Settings

__all__ = ["HeaderTimeoutProtocol", "uvicorn_config"]

log = logging.getLogger(__name__)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head (see module docstring).

    Subclass it with ``header_timeout_s`` set (:func:`uvicorn_config` does).
    """

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        idle_cycle = self.cycle is None or self.cycle.response_complete
        return bool(self.conn.their_state is h11.IDLE and idle_cycle)

    def _watch_head(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._cancel_head_timer()
        elif self._waiting_for_head():
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)
        else:
            self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        log.debug("closing %s: request head not complete after %.1f s", self.client,
                  self.header_timeout_s)
        body = b"request head not received in time\n"
        if self.conn.our_state is h11.IDLE:
            try:
                out = self.conn.send(h11.Response(status_code=408, headers=[
                    (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode())], reason=b"Request Timeout"))
                out = (out or b"") + (self.conn.send(h11.Data(data=body)) or b"")
                out += self.conn.send(h11.EndOfMessage()) or b""
                self.transport.write(out)
            except h11.LocalProtocolError:  # pragma: no cover - the state moved on
                pass
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, *, log_level: str = "info", **extra: Any) -> Any:
    """The :class:`uvicorn.Config` of ``shiftwatch serve``: h11 with the header timeout, the
    keep-alive timeout, the largest request head and the connection limit from ``settings``."""
    import uvicorn

    protocol = type("ShiftwatchH11Protocol", (HeaderTimeoutProtocol,),
                    {"header_timeout_s": float(settings.header_timeout_s)})
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, http=protocol,
        timeout_keep_alive=max(1, round(settings.timeout_keep_alive_s)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.limit_concurrency, timeout_graceful_shutdown=30, **extra,
    )
