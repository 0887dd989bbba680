"""The one webhook client: payload formats and a single POST attempt.

Everything shiftwatch sends to a webhook goes through the outbox (:mod:`monitor.outbox`), which
calls :func:`post_once` for each attempt. Payload formats:

- ``generic`` — ``{"status": "firing", "source": "shiftwatch", "alert": {...}}`` for an alert,
  ``{"status": "event", "source": "shiftwatch", "event": {...}}`` for an event (retrain outcome,
  promotion, rollback);
- ``slack`` — a Slack incoming-webhook message (``text`` plus Block Kit ``blocks``);
- ``alertmanager`` — the Alertmanager v2 API body, a list of alerts with ``labels``,
  ``annotations``, ``startsAt``, ``endsAt`` and ``generatorURL``, posted to
  ``<url>/api/v2/alerts`` (the path is appended when the URL does not end with it).

Every body carries the notification's ``dedupe_key`` (also sent as the ``Idempotency-Key``
header) and, when known, its ``report_url``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = [
    "Attempt",
    "Format",
    "build_payload",
    "event_body",
    "post_once",
    "retryable",
    "slack_escape",
    "target_url",
]

Format = Literal["generic", "slack", "alertmanager"]


def target_url(url: str, fmt: Format) -> str:
    """``url``, with ``/api/v2/alerts`` appended for the Alertmanager format when missing."""
    if fmt == "alertmanager" and not url.rstrip("/").endswith("/api/v2/alerts"):
        return url.rstrip("/") + "/api/v2/alerts"
    return url


def slack_escape(text: object) -> str:
    """``text`` safe inside Slack ``mrkdwn`` and ``text`` fields: ``&``, ``<`` and ``>`` become
    ``&amp;``, ``&lt;`` and ``&gt;`` (Slack's rule), so client-supplied model names or labels
    cannot inject links or ``<!channel>`` mentions."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary(alert: Mapping[str, Any]) -> str:
    return (f"[{str(alert.get('severity', '')).upper()}] shiftwatch: {alert.get('rule')} on "
            f"{alert.get('model_name')} {alert.get('model_version') or ''}".strip())


def _duration_s(text: str | None) -> float:
    from monitor.policy import _duration

    return _duration(text).total_seconds() if text else 0.0


def _diagnosis(alert: Mapping[str, Any]) -> dict[str, Any] | None:
    """The diagnosis of the alert's newest window (DESIGN §10), if the evidence carries one."""
    diag = alert.get("diagnosis")
    if diag is None:
        ev = alert.get("evidence")
        diag = ev.get("diagnosis") if isinstance(ev, Mapping) else None
    return dict(diag) if isinstance(diag, Mapping) and diag.get("kind") else None


def build_payload(alert: Mapping[str, Any], fmt: Format, *, resolve_after: str | None = "1h",
                  generator_url: str | None = None) -> Any:
    """The JSON body of ``alert`` in format ``fmt``; every format names the diagnosed kind of
    shift when the alert's evidence has one (generic: ``alert.diagnosis``; Slack: a line;
    Alertmanager: label ``diagnosis`` and annotation ``diagnosis_summary``)."""
    summary = str(alert.get("summary") or _summary(alert))
    report_url = alert.get("report_url")
    diag = _diagnosis(alert)
    if fmt == "generic":
        body = dict(alert)
        if diag is not None:
            body["diagnosis"] = diag
        return {"status": "firing", "source": "shiftwatch", "alert": body}
    if fmt == "slack":
        fields = [f"*{k}:* {slack_escape(alert.get(k))}" for k in ("rule", "severity", "model_name",
                                                                   "model_version", "run_id")
                  if alert.get(k) is not None]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": summary[:150]}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": slack_escape(alert.get("description") or summary)}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        ]
        if diag is not None:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*diagnosis:* "
                                                       + slack_escape(diag.get("summary") or diag["kind"])}})
        if report_url:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{report_url}|report>"}})
        return {"text": slack_escape(summary), "blocks": blocks}
    starts = str(alert.get("created_at") or datetime.now().astimezone().isoformat())
    annotations = {"summary": summary, "description": str(alert.get("description") or summary),
                   "run_id": str(alert.get("run_id") or ""), "alert_id": str(alert.get("alert_id") or "")}
    if alert.get("dedupe_key"):
        annotations["dedupe_key"] = str(alert["dedupe_key"])
    if report_url:
        annotations["report_url"] = str(report_url)
    item: dict[str, Any] = {
        "labels": {"alertname": str(alert.get("rule")), "severity": str(alert.get("severity")),
                   "model_name": str(alert.get("model_name")),
                   "model_version": str(alert.get("model_version") or ""),
                   "service": "shiftwatch"},
        "annotations": annotations,
        "startsAt": starts,
    }
    if diag is not None:
        item["labels"]["diagnosis"] = str(diag["kind"])
        item["annotations"]["diagnosis_summary"] = str(diag.get("summary") or diag["kind"])
    if resolve_after:
        with contextlib.suppress(ValueError):
            item["endsAt"] = (datetime.fromisoformat(starts)
                              + timedelta(seconds=_duration_s(resolve_after))).isoformat()
    if generator_url or report_url:
        item["generatorURL"] = generator_url or report_url
    return [item]


def event_body(event: Mapping[str, Any], fmt: Format) -> Any:
    """The JSON body of an event notification (``event["kind"]``: retrain, promote, rollback …)."""
    kind = str(event.get("kind"))
    text = str(event.get("summary") or f"shiftwatch: {event.get('model_name')} {kind}")
    if fmt == "generic":
        return {"status": "event", "source": "shiftwatch", "event": dict(event)}
    if fmt == "slack":
        link = [f"<{event['report_url']}|report>"] if event.get("report_url") else []
        lines = [slack_escape(text), *link]
        return {"text": slack_escape(text), "blocks": [{"type": "section",
                                          "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}
    at = str(event.get("created_at") or datetime.now().astimezone().isoformat())
    item: dict[str, Any] = {
        "labels": {"alertname": f"shiftwatch_{kind}", "severity": "info",
                   "model_name": str(event.get("model_name") or ""),
                   "model_version": str(event.get("model_version") or ""), "service": "shiftwatch"},
        "annotations": {"summary": text, "dedupe_key": str(event.get("dedupe_key") or "")},
        "startsAt": at,
        "endsAt": at,  # an event is over once it happened
    }
    if event.get("report_url"):
        item["generatorURL"] = str(event["report_url"])
    return [item]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: the HTTP status (``None`` on a transport error), the error text, the time taken."""

    status_code: int | None
    error: str | None
    elapsed_ms: float

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def retryable(attempt: Attempt) -> bool:
    """Transport errors, timeouts, 408, 429 and 5xx are worth another attempt; other 4xx are not."""
    code = attempt.status_code
    return code is None or code in (408, 429) or code >= 500


def post_once(url: str, body: str, *, headers: Mapping[str, str], timeout_s: float) -> Attempt:
    """POST ``body`` (JSON text) to ``url`` once; never raises for HTTP or transport failures."""
    import httpx

    started = time.perf_counter()
    all_headers = {"content-type": "application/json", "user-agent": "shiftwatch", **headers}
    try:
        resp = httpx.post(url, content=body, headers=all_headers, timeout=httpx.Timeout(timeout_s))
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500],
                       round((time.perf_counter() - started) * 1000, 2))
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    error = None if resp.is_success else (f"HTTP {resp.status_code}: {resp.text[:200]}")
    return Attempt(resp.status_code, error, elapsed)
