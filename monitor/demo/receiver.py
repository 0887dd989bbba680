"""A local webhook receiver for the demo: 127.0.0.1, an ephemeral port, nothing leaves the host.

The notify action posts its alert to :attr:`WebhookReceiver.url`; the
receiver keeps every message it gets (method, path, JSON body) and calls an
optional callback, which the demo uses to print it. Standard library only
(``http.server`` in a background thread).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReceivedMessage", "WebhookReceiver", "describe"]

_MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One request the receiver got."""

    received_at: datetime
    path: str
    body: Any  # parsed JSON, or the raw text when it is not JSON
    content_type: str


class WebhookReceiver:
    """An HTTP server on ``127.0.0.1`` that records POSTed messages.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). Every
    POST is answered ``200 {"ok": true}``; bodies over 1 MiB get ``413``.
    """

    def __init__(self, *, on_message: Callable[[ReceivedMessage], None] | None = None,
                 path: str = "/hook", port: int = 0) -> None:
        self._messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._on_message = on_message
        self._path = path if path.startswith("/") else f"/{path}"
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The URL to post to (valid once started)."""
        if self._server is None:
            raise RuntimeError("WebhookReceiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def start(self) -> WebhookReceiver:
        """Bind 127.0.0.1 (an ephemeral port unless ``port`` was given) and serve in a daemon thread."""
        if self._server is not None:
            return self
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    self._reply(413, {"ok": False, "error": "body too large"})
                    return
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type") or ""
                text = raw.decode("utf-8", errors="replace")
                try:
                    body: Any = json.loads(text) if text else None
                except json.JSONDecodeError:
                    body = text
                receiver._record(ReceivedMessage(datetime.now(UTC), self.path, body, ctype))
                self._reply(200, {"ok": True})

            def do_GET(self) -> None:
                self._reply(200, {"ok": True, "received": len(receiver.messages())})

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the demo prints messages itself

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[ReceivedMessage]:
        """A copy of everything received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def _record(self, msg: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(msg)
        if self._on_message is not None:
            with contextlib.suppress(Exception):  # a printing callback must not break the server
                self._on_message(msg)


def describe(body: Any) -> str:
    """A one-line human summary of a webhook payload (generic JSON, Slack or Alertmanager)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):  # Alertmanager v2: [alert...]
        labels = body[0].get("labels") or {}
        ann = body[0].get("annotations") or {}
        head = ", ".join(f"{k}={v}" for k, v in labels.items())
        summary = ann.get("summary") or ann.get("description") or ""
        return f"alertmanager: {head}{' — ' + str(summary) if summary else ''}"
    if isinstance(body, dict):
        for key in ("alert", "event"):  # generic: {"status", "source", "alert" | "event": {...}}
            if isinstance(body.get(key), dict):
                inner = describe(body[key])
                status = body.get("status")
                return inner.replace("json: ", f"json ({status}): ", 1) if status else inner
        if isinstance(body.get("text"), str):  # Slack-compatible
            return f"slack: {_one_line(body['text'])}"
        keys = ("kind", "rule", "severity", "model_name", "model_version", "run_id", "summary", "message")
        parts = [f"{k}={_one_line(str(body[k]))}" for k in keys if body.get(k) not in (None, "")]
        if parts:
            return "json: " + ", ".join(parts)
        return "json: " + _one_line(json.dumps(body, default=str))
    return _one_line(str(body))


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
