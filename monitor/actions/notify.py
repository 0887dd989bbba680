"""``notify``: put the alert in the durable outbox, addressed to a webhook.

The action does not post: it writes one ``outbox`` row (:mod:`monitor.outbox`) under the
alert's dedupe key (``alert|<model>|<version>|<rule>|<run_id>``, ``#n`` for the n-th notify
action of a rule), and the delivery job posts it, retrying with backoff until it is delivered
or expires. The scheduler enqueues the same row already in the transaction that records the
decision (:func:`monitor.actions.runner.record_decision`); the action then finds it there.
Formats (``generic``, ``slack``, ``alertmanager``) are those of :mod:`monitor.webhook`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, model_validator

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams
from monitor.outbox import Notification, alert_dedupe_key, enqueue, run_report_url
from monitor.webhook import Format, build_payload, slack_escape, target_url

if TYPE_CHECKING:
    from monitor.settings import Settings

__all__ = ["NotifyAction", "NotifyParams", "build_payload", "slack_escape"]

log = logging.getLogger(__name__)


class NotifyParams(ActionParams):
    """Parameters of :class:`NotifyAction`."""

    url: str | None = Field(None, description="webhook URL; default: settings.webhook_url")
    format: Format = "generic"
    timeout_s: float = Field(5.0, gt=0, description="per delivery attempt")
    headers: dict[str, str] = Field(default_factory=dict)
    resolve_after: str | None = Field("1h", description="alertmanager endsAt = startsAt + this")
    generator_url: str | None = Field(None, description="alertmanager generatorURL (default: report URL)")
    # Deprecated (first version: in-action retries). Accepted so old policy files still load;
    # the outbox now retries with settings.outbox_backoff_s until settings.outbox_expire_s.
    retries: int | None = Field(None, ge=0, description="deprecated, ignored: the outbox retries")
    backoff_s: float | None = Field(None, ge=0, description="deprecated, ignored: outbox_backoff_s")
    max_backoff_s: float | None = Field(None, ge=0, description="deprecated, ignored: outbox_max_backoff_s")

    @model_validator(mode="after")
    def _deprecated(self) -> NotifyParams:
        used = [k for k in ("retries", "backoff_s", "max_backoff_s") if getattr(self, k) is not None]
        if used:
            log.warning("notify parameters %s are deprecated and ignored: the outbox retries until "
                        "delivered or expired (settings outbox_backoff_s, outbox_max_backoff_s, "
                        "outbox_expire_s)", ", ".join(used))
        return self


class NotifyAction(Action):
    """Queue the alert for webhook delivery (see module docstring)."""

    kind: ClassVar[str] = "notify"
    Params = NotifyParams
    params: NotifyParams

    def _url(self, settings: Settings) -> str | None:
        url = self.params.url or settings.webhook_url
        return target_url(url, self.params.format) if url else None

    def describe(self, context: ActionContext) -> str:
        return f"POST a {self.params.format} alert to {self._url(context.settings) or '(no webhook URL)'}"

    def notification(self, alert: Mapping[str, Any], settings: Settings, *,
                     occurrence: int = 1) -> Notification | None:
        """The outbox row of ``alert`` (``None`` when no webhook URL is configured)."""
        url = self._url(settings)
        if not url:
            return None
        base = alert_dedupe_key(str(alert["rule"]), str(alert["model_name"]), str(alert["model_version"]),
                                str(alert["run_id"]))
        key = base if occurrence == 1 else f"{base}#{occurrence}"
        body_alert = {**alert, "dedupe_key": key}
        body_alert.setdefault("report_url", run_report_url(settings, alert.get("run_id")))
        body = build_payload(body_alert, self.params.format, resolve_after=self.params.resolve_after,
                             generator_url=self.params.generator_url)
        return Notification(dedupe_key=key, kind="alert", url=url, body=body, format=self.params.format,
                            headers=dict(self.params.headers), timeout_s=self.params.timeout_s,
                            model_name=str(alert["model_name"]), model_version=str(alert["model_version"]),
                            rule=str(alert["rule"]), run_id=str(alert["run_id"]),
                            decision_id=str(alert.get("alert_id") or "") or None)

    def _run(self, context: ActionContext) -> ActionOutcome:
        note = self.notification(context.alert, context.settings, occurrence=context.occurrence)
        if note is None:
            return ActionOutcome("skipped", attempts=0,
                                 detail={"reason": "no webhook URL (policy notify.url or "
                                                   "SHIFTWATCH_WEBHOOK_URL)"})
        new = enqueue(context.store, note, now=context.now, expire_after_s=context.settings.outbox_expire_s)
        return ActionOutcome("ok", attempts=0, detail={"outbox": note.dedupe_key, "url": note.url,
                                                       "format": note.format, "queued_now": new})
