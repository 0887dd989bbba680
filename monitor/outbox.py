"""The durable notification outbox: enqueue in the deciding transaction, deliver until done.

Modelled on Alertmanager's notification pipeline, with DuckDB as the queue:

- :func:`enqueue` writes one ``outbox`` row. Callers do it inside the transaction that records
  the decision (``record_decision``), the registry change or the retrain outcome that causes
  the notification, so a notification exists exactly when its cause does. The row's primary key
  is its *dedupe key* (an alert's is ``alert|<model>|<version>|<rule>|<run_id>``, one drift run
  being one window): enqueuing it again is a no-op.
- :func:`deliver_due` is the delivery job: it posts every pending row whose next attempt is due,
  one attempt each (:func:`monitor.webhook.post_once`), records every attempt in
  ``outbox_attempts`` and then marks the row ``delivered`` (2xx), ``failed`` (a 4xx other than
  408/429: resending cannot help) or leaves it ``pending`` with the next attempt
  ``Backoff.delay_s`` later. Rows past ``expires_at`` become ``expired``. A delivered row is never
  sent again; the receiver also gets the dedupe key (``Idempotency-Key`` header and a payload
  field), so a resend after a crash between the POST and its commit can be dropped there.
- Pending rows live in the file, so a restarted sidecar picks them up on its first delivery run.
- :func:`enqueue_event` is the one call for event notifications (retrain outcomes, promotions,
  rollbacks) to ``settings.webhook_url`` in ``settings.webhook_format``.

Backoff is exponential, ``min(base * 2**(k-1), max)`` after the k-th failed attempt, shortened
by a deterministic jitter of up to ``jitter`` of it, derived from (dedupe key, k) by hashing: the
same notification always waits the same, different ones spread out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.webhook import Attempt, Format, event_body, post_once, retryable, target_url

if TYPE_CHECKING:
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["Backoff", "DeliveryReport", "Notification", "alert_dedupe_key", "backoff_for", "deliver_due",
           "enqueue", "enqueue_event", "run_report_url"]

log = logging.getLogger(__name__)

#: One delivery run at a time per process: two runs must never post the same due row twice.
_DELIVERY_LOCK = threading.Lock()

#: ``post(url, body, headers=..., timeout_s=...)``: one attempt (tests may pass their own).
Poster = Callable[..., Attempt]


def alert_dedupe_key(rule: str, model_name: str, model_version: str, run_id: str) -> str:
    """The dedupe key of an alert: one per (rule, model, version, window); a run is one window."""
    return f"alert|{model_name}|{model_version}|{rule}|{run_id}"


def run_report_url(settings: Settings, run_id: str | None) -> str | None:
    """Where the sidecar serves the report of drift run ``run_id`` (``None`` without ``public_url``).

    The sidecar mounts ``settings.reports_dir`` at ``/reports`` and the renderer writes run
    reports to ``runs/<run_id>.html`` (:func:`reports.render.run_file`).
    """
    if not settings.public_url or not run_id:
        return None
    return f"{settings.public_url.rstrip('/')}/reports/runs/{run_id}.html"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for the outbox; ``body`` is the JSON-ready request body in ``format``."""

    dedupe_key: str
    kind: str
    url: str
    body: Any
    format: Format = "generic"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 5.0
    model_name: str | None = None
    model_version: str | None = None
    rule: str | None = None
    run_id: str | None = None
    decision_id: str | None = None


def enqueue(store: Store, notification: Notification, *, now: datetime, expire_after_s: float) -> bool:
    """Store ``notification`` as pending (due now); False when its dedupe key was stored before.

    Opens no transaction of its own: call it inside the caller's (the deciding) transaction.
    """
    n = notification
    before = store.execute("outbox_get", {"dedupe_key": n.dedupe_key})
    store.execute("outbox_insert", {
        "dedupe_key": n.dedupe_key, "kind": n.kind, "model_name": n.model_name,
        "model_version": n.model_version, "rule": n.rule, "run_id": n.run_id,
        "decision_id": n.decision_id, "url": target_url(n.url, n.format), "format": n.format,
        "headers": json.dumps(dict(n.headers)), "body": json.dumps(n.body, default=str),
        "timeout_s": float(n.timeout_s), "now": now,
        "expires_at": now + timedelta(seconds=expire_after_s)})
    return not before


@dataclass(frozen=True, slots=True)
class Backoff:
    """When to try again after the k-th failed attempt (see the module docstring)."""

    base_s: float = 1.0
    max_s: float = 300.0
    jitter: float = 0.25

    def delay_s(self, dedupe_key: str, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        full = min(self.base_s * 2.0 ** max(attempt - 1, 0), self.max_s)
        digest = hashlib.sha256(f"{dedupe_key}\x00{attempt}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64
        return full * (1.0 - self.jitter * u)


def backoff_for(settings: Settings) -> Backoff:
    """The :class:`Backoff` of ``settings`` (``outbox_backoff_s``, ``outbox_max_backoff_s``)."""
    return Backoff(base_s=settings.outbox_backoff_s, max_s=settings.outbox_max_backoff_s)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one delivery run did, by dedupe key."""

    delivered: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready."""
        return {"delivered": list(self.delivered), "retrying": list(self.retrying),
                "failed": list(self.failed), "expired": list(self.expired)}


def deliver_due(store: Store, *, clock: Callable[[], datetime] | None = None, backoff: Backoff | None = None,
                limit: int = 100, post: Poster | None = None) -> DeliveryReport:
    """Post every due pending notification once; record each attempt (see the module docstring)."""
    now_of = clock or (lambda: datetime.now(UTC))
    policy = backoff or Backoff()
    send = post or post_once
    delivered: list[str] = []
    retrying: list[str] = []
    failed: list[str] = []
    with _DELIVERY_LOCK:
        expired = [str(r[0]) for r in store.execute("outbox_expire", {"now": now_of()})]
        for key in expired:
            log.warning("notification %s expired undelivered", key)
        for row in store.fetch_dicts("outbox_due", {"now": now_of(), "n": int(limit)}):
            key = str(row["dedupe_key"])
            headers = {**json.loads(row["headers"] or "{}"), "Idempotency-Key": key}
            number = int(row["attempts"]) + 1
            attempted_at = now_of()
            attempt = send(str(row["url"]), str(row["body"]), headers=headers,
                           timeout_s=float(row["timeout_s"]))
            if attempt.delivered:
                status, next_at, delivered_at = "delivered", attempted_at, attempted_at
                delivered.append(key)
            elif not retryable(attempt):
                status, next_at, delivered_at = "failed", attempted_at, None
                failed.append(key)
                log.warning("notification %s refused for good: %s", key, attempt.error)
            else:
                status, delivered_at = "pending", None
                next_at = attempted_at + timedelta(seconds=policy.delay_s(key, number))
                retrying.append(key)
                log.info("notification %s attempt %d failed (%s); next at %s", key, number, attempt.error,
                         next_at.isoformat())
            with store.transaction():
                store.execute("outbox_record_attempt", {
                    "dedupe_key": key, "attempt": number, "attempted_at": attempted_at,
                    "status_code": attempt.status_code, "error": attempt.error,
                    "elapsed_ms": attempt.elapsed_ms})
                store.execute("outbox_mark", {"dedupe_key": key, "status": status, "attempts": number,
                                              "next_attempt_at": next_at, "delivered_at": delivered_at,
                                              "last_error": attempt.error})
    return DeliveryReport(tuple(delivered), tuple(retrying), tuple(failed), tuple(expired))


def enqueue_event(store: Store, settings: Settings, kind: str, payload: Mapping[str, Any], *,
                  dedupe_key: str | None = None, now: datetime | None = None) -> str | None:
    """Queue an event notification (``kind``: retrain, promote, rollback, recover …) to
    ``settings.webhook_url`` in ``settings.webhook_format``; return its dedupe key, or ``None``
    when no webhook is configured.

    ``payload`` is the event's evidence (JSON-ready). ``dedupe_key`` names the event once (e.g.
    ``retrain|<run_id>``); without one each call is a new event. ``report_url`` is added from
    ``settings.public_url`` when the payload names a ``drift_run_id``. Opens no transaction:
    call it inside the transaction that records the event.
    """
    if not settings.webhook_url:
        return None
    at = now or datetime.now(UTC)
    key = dedupe_key or f"event|{kind}|{uuid.uuid4().hex}"
    event: dict[str, Any] = {"kind": kind, **payload, "dedupe_key": key, "created_at": at.isoformat()}
    if not event.get("report_url"):
        event["report_url"] = run_report_url(settings, _opt_str(payload.get("drift_run_id")))
    fmt: Format = settings.webhook_format
    enqueue(store, Notification(
        dedupe_key=key, kind=kind, url=settings.webhook_url, body=event_body(event, fmt), format=fmt,
        model_name=_opt_str(payload.get("model_name")),
        model_version=_opt_str(payload.get("model_version") or payload.get("to_version")),
        run_id=_opt_str(payload.get("drift_run_id"))), now=at, expire_after_s=settings.outbox_expire_s)
    return key


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
