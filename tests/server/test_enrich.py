"""Zero-instrumentation ingest: text-only records get embeddings and tokenizer stats computed
with the model version's registered encoder, after the raw record is committed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor.enrich import Enricher, registry_resolver
from monitor.registry import Preprocessing, Registry
from monitor.server import create_app
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.server.helpers import AUTH, record, settings_for

TEXTS = ["the battery is great", "awful service and bad food", "this movie was not very good",
         "zzzz qqqq unknownword", "good " * 100]


PRE = Preprocessing(max_length=32, labels=("label_0", "label_1"))


def _text_only(i: int, text: str, version: str = "v1") -> dict[str, Any]:
    rec = record(i, prefix="t", model="tiny", version=version, dim=None, text=text)
    for key in ("n_tokens", "n_unk", "truncated", "n_chars"):
        rec.pop(key)
    return rec


@pytest.fixture()
def registry_store(tmp_path: Path) -> tuple[Store, Path]:
    store = Store(tmp_path / "sidecar.duckdb")
    # the tiny BERT has 64 positions: its registered preprocessing truncates at 32 tokens
    Registry(store, tmp_path / "models").register("tiny", make_tiny_bert(tmp_path / "src"), version="v1",
                                                  status="active", preprocessing=PRE)
    return store, tmp_path / "models"


def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def test_text_only_records_are_committed_then_enriched(registry_store: tuple[Store, Path],
                                                       tmp_path: Path) -> None:
    store, models = registry_store
    app = create_app(settings_for(tmp_path, registry_dir=models), store=store, start_scheduler=False)
    with TestClient(app) as c:
        r = c.post("/v1/predictions", json={"records": [_text_only(i, t) for i, t in enumerate(TEXTS)]},
                   headers=AUTH)
        assert r.status_code == 202 and r.json()["accepted"] == len(TEXTS)
        _wait(lambda: store.fetchall_sql(
            "SELECT count(*) FROM predictions WHERE embedding IS NULL OR n_tokens IS NULL")[0][0] == 0)
    rows = store.read_window("tiny").to_pylist()
    registry = Registry(store, models)
    encoder = registry.load_encoder(registry.get("tiny", "v1"), classifier=False)
    expected = encoder.encode(TEXTS)
    assert [r["n_tokens"] for r in rows] == expected.stats.n_tokens.tolist()
    assert [r["n_unk"] for r in rows] == expected.stats.n_unk.tolist()
    assert [r["truncated"] for r in rows] == [False, False, False, False, True]
    assert [r["n_chars"] for r in rows] == [len(t) for t in TEXTS]
    assert rows[3]["n_unk"] >= 2  # "zzzz qqqq unknownword" is outside the tiny vocabulary
    got = np.array([r["embedding"] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(got, expected.embeddings, rtol=1e-4, atol=1e-5)
    assert store.embedding_dims()[("tiny", "v1")] == 32


def test_values_sent_by_the_client_are_kept(registry_store: tuple[Store, Path]) -> None:
    store, models = registry_store
    rec = _text_only(0, "good phone")
    rec["n_tokens"] = 99  # the serving stack counted these itself; the embedding is missing
    store.insert_predictions([rec])
    assert Enricher(store, registry_resolver(store, models)).run_pending() == 1
    row = store.read_window("tiny").to_pylist()[0]
    assert row["n_tokens"] == 99 and row["embedding"] is not None and row["n_unk"] == 0


def test_unknown_version_waits_and_is_picked_up_after_a_restart(registry_store: tuple[Store, Path],
                                                                tmp_path: Path) -> None:
    store, models = registry_store
    store.insert_predictions([_text_only(0, "good", version="v9")])
    enricher = Enricher(store, registry_resolver(store, models), retry_s=0.0)
    assert enricher.run_pending() == 0  # no such version in the registry: the record waits, intact
    assert store.count_predictions() == 1
    Registry(store, models).register("tiny", make_tiny_bert(tmp_path / "src9"), version="v9",
                                     preprocessing=PRE)
    assert Enricher(store, registry_resolver(store, models)).run_pending() == 1  # a fresh process


def test_failing_encoder_does_not_block_the_worker(registry_store: tuple[Store, Path]) -> None:
    store, _ = registry_store

    class Broken:
        def encode(self, texts: list[str]) -> Any:
            raise RuntimeError("CUDA out of memory")

    store.insert_predictions([_text_only(i, "good") for i in range(3)])
    enricher = Enricher(store, lambda name, version: Broken())  # type: ignore[arg-type,return-value]
    assert enricher.run_pending() == 3  # tried as a batch, then row by row; skipped, not retried in a loop
    assert enricher.run_pending() == 0
    assert store.fetchall_sql("SELECT count(*) FROM predictions WHERE embedding IS NULL")[0][0] == 3


def test_full_queue_drops_hints_not_records(registry_store: tuple[Store, Path]) -> None:
    store, models = registry_store
    enricher = Enricher(store, registry_resolver(store, models), max_queue=1)
    assert enricher.notify("tiny", "v1") is True
    assert enricher.notify("tiny", "v1") is False
    store.insert_predictions([_text_only(0, "good")])
    assert enricher.run_pending() == 1  # the sweep finds the records regardless
