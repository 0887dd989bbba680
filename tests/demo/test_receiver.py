"""The local webhook receiver: records what is posted, answers, describes payloads."""

from __future__ import annotations

import httpx
import pytest

from monitor.demo.receiver import ReceivedMessage, WebhookReceiver, describe


def test_receives_json_and_calls_back() -> None:
    got: list[ReceivedMessage] = []
    with WebhookReceiver(on_message=got.append) as rx:
        assert rx.url.startswith("http://127.0.0.1:") and rx.url.endswith("/hook")
        r = httpx.post(rx.url, json={"rule": "embedding-drift", "severity": "warning"}, timeout=5)
        assert r.status_code == 200 and r.json() == {"ok": True}
        httpx.post(rx.url.replace("/hook", "/other"), content=b"not json",
                   headers={"Content-Type": "text/plain"}, timeout=5)
        msgs = rx.messages()
    assert [m.body for m in msgs] == [{"rule": "embedding-drift", "severity": "warning"}, "not json"]
    assert [m.path for m in msgs] == ["/hook", "/other"]
    assert got == msgs
    assert msgs[0].content_type == "application/json"


def test_a_failing_callback_does_not_break_the_receiver() -> None:
    def boom(_: ReceivedMessage) -> None:
        raise RuntimeError("printing failed")

    with WebhookReceiver(on_message=boom) as rx:
        assert httpx.post(rx.url, json={"a": 1}, timeout=5).status_code == 200
        assert len(rx.messages()) == 1


def test_stop_releases_the_port() -> None:
    rx = WebhookReceiver().start()
    url = rx.url
    rx.stop()
    with pytest.raises(RuntimeError):
        _ = rx.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json={}, timeout=2)


def test_oversized_bodies_are_refused() -> None:
    with WebhookReceiver() as rx:
        r = httpx.post(rx.url, content=b"x" * (1024 * 1024 + 1), timeout=10)
        assert r.status_code == 413
        assert rx.messages() == []


@pytest.mark.parametrize(("body", "expected"), [
    ({"text": "drift on  support-sentiment\nv1"}, "slack: drift on support-sentiment v1"),
    ([{"labels": {"alertname": "drift", "model": "m"}, "annotations": {"summary": "embedding"}}],
     "alertmanager: alertname=drift, model=m — embedding"),
    ({"rule": "r1", "severity": "critical", "model_name": "m", "extra": 1},
     "json: rule=r1, severity=critical, model_name=m"),
    ({"other": 1}, 'json: {"other": 1}'),
    ({"status": "firing", "source": "shiftwatch", "alert": {"rule": "r", "severity": "warning", "x": 2}},
     "json (firing): rule=r, severity=warning"),
    ({"status": "event", "source": "shiftwatch",
      "event": {"kind": "rollback", "model_name": "m", "summary": "shiftwatch: m rollback v3 -> v2", "y": 1}},
     "json (event): kind=rollback, model_name=m, summary=shiftwatch: m rollback v3 -> v2"),
    ("plain", "plain"),
])
def test_describe(body: object, expected: str) -> None:
    assert describe(body) == expected
