"""``notify``: POST the alert to a webhook, with timeouts, retries and a record of each attempt.

Payload formats:

- ``generic`` — ``{"status": "firing", "source": "shiftwatch", "alert": {...}}``;
- ``slack`` — a Slack incoming-webhook message (``text`` plus Block Kit ``blocks``);
- ``alertmanager`` — the Alertmanager v2 API body, a list of alerts with ``labels``,
  ``annotations``, ``startsAt``, ``endsAt`` and ``generatorURL``, posted to
  ``<url>/api/v2/alerts`` (the path is appended when the URL does not end with it).

A 2xx answer is success. Transport errors, timeouts, 429 and 5xx are retried with exponential
backoff (``backoff_s * 2**k``, capped by ``max_backoff_s``); any other 4xx fails at once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams

__all__ = ["NotifyAction", "NotifyParams", "build_payload"]

Format = Literal["generic", "slack", "alertmanager"]


class NotifyParams(ActionParams):
    """Parameters of :class:`NotifyAction`."""

    url: str | None = Field(None, description="webhook URL; default: settings.webhook_url")
    format: Format = "generic"
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0, le=10, description="extra attempts after the first")
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)
    resolve_after: str | None = Field("1h", description="alertmanager endsAt = startsAt + this")
    generator_url: str | None = None


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
    diag = _diagnosis(alert)
    if fmt == "generic":
        body = dict(alert)
        if diag is not None:
            body["diagnosis"] = diag
        return {"status": "firing", "source": "shiftwatch", "alert": body}
    if fmt == "slack":
        fields = [f"*{k}:* {alert.get(k)}" for k in ("rule", "severity", "model_name", "model_version",
                                                     "run_id") if alert.get(k) is not None]
        return {
            "text": summary,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": summary[:150]}},
                {"type": "section", "text": {"type": "mrkdwn",
                                             "text": str(alert.get("description") or summary)}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
                *([{"type": "section", "text": {"type": "mrkdwn", "text": "*diagnosis:* "
                                                + str(diag.get("summary") or diag["kind"])}}]
                  if diag is not None else []),
            ],
        }
    starts = str(alert.get("created_at") or datetime.now().astimezone().isoformat())
    item: dict[str, Any] = {
        "labels": {"alertname": str(alert.get("rule")), "severity": str(alert.get("severity")),
                   "model_name": str(alert.get("model_name")),
                   "model_version": str(alert.get("model_version") or ""),
                   "service": "shiftwatch"},
        "annotations": {"summary": summary, "description": str(alert.get("description") or summary),
                        "run_id": str(alert.get("run_id") or ""),
                        "alert_id": str(alert.get("alert_id") or "")},
        "startsAt": starts,
    }
    if diag is not None:
        item["labels"]["diagnosis"] = str(diag["kind"])
        item["annotations"]["diagnosis_summary"] = str(diag.get("summary") or diag["kind"])
    if resolve_after:
        with contextlib.suppress(ValueError):
            item["endsAt"] = (datetime.fromisoformat(starts)
                              + timedelta(seconds=_duration_s(resolve_after))).isoformat()
    if generator_url:
        item["generatorURL"] = generator_url
    return [item]


class NotifyAction(Action):
    """POST the alert to a webhook (see module docstring)."""

    kind: ClassVar[str] = "notify"
    Params = NotifyParams
    params: NotifyParams

    #: how to wait between attempts (tests may replace it)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def _url(self, context: ActionContext) -> str | None:
        url = self.params.url or context.settings.webhook_url
        if url and self.params.format == "alertmanager" and not url.rstrip("/").endswith("/api/v2/alerts"):
            url = url.rstrip("/") + "/api/v2/alerts"
        return url

    def describe(self, context: ActionContext) -> str:
        return f"POST a {self.params.format} alert to {self._url(context) or '(no webhook URL)'}"

    def _run(self, context: ActionContext) -> ActionOutcome:
        import httpx

        url = self._url(context)
        if not url:
            return ActionOutcome("skipped", attempts=0,
                                 detail={"reason": "no webhook URL (policy notify.url or "
                                                   "SHIFTWATCH_WEBHOOK_URL)"})
        body = json.dumps(build_payload(context.alert, self.params.format,
                                        resolve_after=self.params.resolve_after,
                                        generator_url=self.params.generator_url), default=str)
        headers = {"content-type": "application/json", "user-agent": "shiftwatch", **self.params.headers}
        attempts: list[dict[str, Any]] = []
        with httpx.Client(timeout=httpx.Timeout(self.params.timeout_s)) as client:
            for k in range(self.params.retries + 1):
                if k:
                    self.sleep(min(self.params.backoff_s * 2 ** (k - 1), self.params.max_backoff_s))
                started = time.perf_counter()
                record: dict[str, Any] = {"attempt": k + 1}
                try:
                    resp = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    record.update(error=f"{type(exc).__name__}: {exc}", retry=True)
                else:
                    record.update(status_code=resp.status_code,
                                  retry=resp.status_code == 429 or resp.status_code >= 500)
                    if not resp.is_success and not record["retry"]:
                        record["error"] = resp.text[:200]
                record["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
                attempts.append(record)
                code = record.get("status_code")
                if code is not None and 200 <= code < 300:
                    return ActionOutcome("ok", attempts=len(attempts),
                                         detail={"url": url, "format": self.params.format,
                                                 "attempts": attempts})
                if not record["retry"]:
                    break
        last = attempts[-1]
        reason = last.get("error") or f"HTTP {last.get('status_code')}"
        detail = {"url": url, "format": self.params.format, "attempts": attempts,
                  "error": f"webhook failed after {len(attempts)} attempt(s): {reason}"}
        return ActionOutcome("failed", attempts=len(attempts), detail=detail)

