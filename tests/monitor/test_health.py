"""Serving errors and collector heartbeats (migration 002, monitor.health)."""

from __future__ import annotations

import pytest

from monitor.errors import SchemaError
from monitor.health import insert_heartbeats, insert_serving_errors
from monitor.store import Store


def _beat(**over: object) -> dict[str, object]:
    beat: dict[str, object] = {
        "collector_id": "c1", "ts": "2026-03-01T12:00:00Z", "model_name": "m", "model_version": "v1",
        "queue_depth": 3, "queue_capacity": 100, "dropped": 0, "sink_failures": 1, "spooled": 0,
        "sent": 10,
    }
    beat.update(over)
    return beat


def test_errors_and_heartbeats_round_trip() -> None:
    with Store(":memory:") as store:
        n = insert_serving_errors(store, [
            {"ts": "2026-03-01T12:00:00Z", "model_name": "m", "model_version": "v1",
             "kind": "tokenizer", "message": "bad input", "source": "web"},
            {"ts": "2026-03-01T12:00:01+00:00", "model_name": "m", "model_version": "v1",
             "kind": "model", "message": "oom"},
        ])
        assert n == 2
        rows = store.fetch_dicts("health_recent_errors", {"model_name": "m", "n": 10})
        assert [r["kind"] for r in rows] == ["model", "tokenizer"]
        insert_heartbeats(store, [_beat()])
        insert_heartbeats(store, [_beat(ts="2026-03-01T12:00:30Z", sent=20)])
        insert_heartbeats(store, [_beat(ts="2026-03-01T12:00:30Z", sent=25)])  # same key: replaced
        latest = store.fetch_dicts("health_latest_heartbeats")
        assert len(latest) == 1 and latest[0]["sent"] == 25


@pytest.mark.parametrize(
    ("row", "field"),
    [({"queue_depth": -1}, "queue_depth"), ({"dropped": "3"}, "dropped"), ({"ts": None}, "ts"),
     ({"extra": 1}, "extra"), ({"collector_id": 5}, "collector_id")],
)
def test_bad_heartbeat_names_the_field_and_writes_nothing(row: dict[str, object], field: str) -> None:
    with Store(":memory:") as store:
        with pytest.raises(SchemaError) as info:
            insert_heartbeats(store, [_beat(), _beat(**row)])
        assert (info.value.errors[0].row, info.value.errors[0].field) == (1, field)
        assert store.execute("health_latest_heartbeats") == []
