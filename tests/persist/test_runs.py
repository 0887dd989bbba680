"""Stored drift runs come back as the DriftReport they were saved from (to_dict → from_dict)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.drift.base import DriftResult
from monitor.drift.suite import DriftReport, DriftSuite
from monitor.errors import StoreError
from monitor.persist.runs import save_run, stored_report
from monitor.store import Store
from tests.drift.conftest import synthetic_frame

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def report() -> DriftReport:
    rng = np.random.default_rng(3)
    ref = synthetic_frame(300, rng, with_probs=True)
    cur = synthetic_frame(300, rng, shift=2.0, prior=(0.3, 0.3, 0.3, 0.1), with_probs=True)
    options = {"embedding": {"n_permutations": 200}}
    return DriftSuite(["embedding", "bbsd", "class_distribution", "confidence", "tokenizer", "performance"],
                      options=options, seed=0).fit(ref).compute(cur)


def test_every_stored_field_survives_to_dict_and_from_dict(report: DriftReport) -> None:
    stored = json.loads(json.dumps(report.to_dict()))  # what drift_runs.result holds
    back = DriftReport.from_dict(stored)
    assert back.to_dict() == stored
    assert (back.n_reference, back.n_current, back.drifted, back.alpha) == (
        report.n_reference, report.n_current, report.drifted, report.alpha)
    assert back.verdict == stored["verdict"] and back.drifted  # the shifted window drifted
    assert [s.signal for s in back.signals] == [s.signal for s in report.signals]
    for got, sent in zip(back.signals, stored["signals"], strict=True):
        for f in fields(DriftResult):
            assert getattr(got, f.name) == sent[f.name], f.name
        assert back.corrected(got.signal) == sent["corrected"]
    assert back.diagnosis().to_dict() == stored["diagnosis"]


def test_a_stored_diagnosis_is_kept_not_recomputed(report: DriftReport) -> None:
    stored = report.to_dict()
    stored["diagnosis"] = {**stored["diagnosis"], "kind": "input_format", "evidence": {"reasons": ["x"]}}
    back = DriftReport.from_dict(stored)
    assert back.diagnosis().kind == "input_format" and back.to_dict()["diagnosis"]["summary"].endswith(": x")
    legacy = {k: v for k, v in report.to_dict().items() if k != "diagnosis"}  # runs stored before diagnoses
    assert DriftReport.from_dict(legacy).diagnosis() == report.diagnosis()


def test_save_run_then_stored_report_gives_the_report_back(tmp_path: Path, report: DriftReport) -> None:
    with Store(tmp_path / "r.duckdb") as store:
        run_id = save_run(store, report, model_name="m", model_version="v1", reference_name="ref",
                          window_start=START, window_end=END)
        (row,) = store.fetch_dicts("ops_run", {"run_id": run_id})
    assert stored_report(row["result"]).to_dict() == json.loads(json.dumps(report.to_dict()))


@pytest.mark.parametrize("bad", ["", "{", "[]", '{"n_reference": 1}', '{"n_reference": 1, "n_current": 1, '
                                 '"drifted": false, "signals": [{"signal": "x", "status": "maybe"}]}'])
def test_what_is_no_stored_report_is_a_store_error(bad: str) -> None:
    with pytest.raises(StoreError, match="not a drift report"):
        stored_report(bad)
