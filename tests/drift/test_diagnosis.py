"""Diagnosis: each kind from the evidence that defines it, and the JSON/notify shapes."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.actions.notify import build_payload
from monitor.drift.base import DriftResult
from monitor.drift.diagnosis import Diagnosis, diagnose
from monitor.drift.frame import DriftFrame
from monitor.drift.suite import DriftReport, DriftSuite, holm_verdict
from tests.drift.conftest import synthetic_frame


def sig(name: str, p: float, details: dict[str, Any] | None = None) -> DriftResult:
    return DriftResult(signal=name, method="m", statistic=0.1, p_value=p, threshold=0.01,
                       drifted=p < 0.01, n_reference=500, n_current=200, details=details or {})


def report(*signals: DriftResult) -> DriftReport:
    drifted, verdict = holm_verdict(signals, 0.01)
    return DriftReport(n_reference=500, n_current=200, drifted=drifted, signals=signals, verdict=verdict)


STILL = {"per_class": {"0": {"p_value": 0.4, "status": "ok"}, "1": {"p_value": 0.7, "status": "ok"}}}
MOVED = {"per_class": {"0": {"p_value": 1e-4, "status": "ok"}, "1": {"p_value": 0.3, "status": "ok"}}}


def test_no_drift_is_none_and_names_raw_flags_that_did_not_survive() -> None:
    d = diagnose(report(sig("embedding", 0.2), sig("class_distribution", 0.006), sig("confidence", 0.5)))
    assert d.kind == "none"
    assert d.evidence["raw_signals"] == ["class_distribution"] and d.evidence["corrected_signals"] == []
    assert d.confidence < 1.0 and "none survives correction" in d.summary


def test_format_sub_test_makes_input_format_but_token_counts_alone_do_not() -> None:
    fmt = {"tests": {"unk_rate": {"p_value": 1e-9, "reference": 0.0, "current": 0.046},
                     "n_tokens": {"p_value": 0.3}}}
    d = diagnose(report(sig("embedding", 1e-4, MOVED), sig("tokenizer", 2e-9, fmt)))
    assert d.kind == "input_format" and "[UNK] share" in d.summary
    lengths = {"tests": {"n_tokens": {"p_value": 1e-9}, "unk_rate": {"p_value": 0.5}}}
    longer = diagnose(report(sig("embedding", 1e-4, MOVED), sig("tokenizer", 2e-9, lengths)))
    assert longer.kind == "covariate"


def test_entropy_up_with_unknown_inputs_is_out_of_scope() -> None:
    unk = {"tests": {"entropy": {"p_value": 1e-6, "reference_mean": 0.4, "current_mean": 1.1},
                     "distance": {"p_value": 1e-5, "far_share": 0.2, "expected_far_share": 0.01}}}
    d = diagnose(report(sig("embedding", 1e-3, MOVED), sig("unknown_input", 1e-6, unk)))
    assert d.kind == "out_of_scope" and d.confidence == 1.0
    assert "20% of rows far" in d.summary


def test_mix_moved_with_classes_in_place_is_label_prior_else_covariate() -> None:
    cd = {"labels": ["0", "1"], "reference_share": [0.5, 0.5], "current_share": [0.2, 0.8]}
    d = diagnose(report(sig("embedding", 0.002, STILL), sig("class_distribution", 1e-6, cd)))
    assert d.kind == "label_prior" and "1 50% → 80%" in d.summary
    assert diagnose(report(sig("embedding", 0.002, MOVED), sig("class_distribution", 1e-6, cd))).kind \
        == "covariate"


def test_report_json_carries_diagnosis_and_corrected_flags_and_round_trips() -> None:
    rng = np.random.default_rng(3)
    ref, cur = synthetic_frame(300, rng), synthetic_frame(200, rng, shift=1.0)
    rep = DriftSuite(["embedding", "confidence"], seed=0).fit(ref).compute(cur)
    data = rep.to_dict()
    assert data["diagnosis"]["kind"] == "covariate" and 0 < data["diagnosis"]["confidence"] <= 1
    flags = {s["signal"]: (s["drifted"], s["corrected"]) for s in data["signals"]}
    assert flags["embedding"] == (True, True)
    assert DriftReport.from_dict(data).to_dict() == data
    assert Diagnosis.from_dict(data["diagnosis"]) == rep.diagnosis()


def test_notify_payloads_name_the_diagnosis() -> None:
    diag = {"kind": "label_prior", "summary": "Label-prior shift: predicted share 1 50% → 80%"}
    alert = {"rule": "drift", "severity": "warning", "model_name": "m", "evidence": {"diagnosis": diag}}
    assert build_payload(alert, "generic")["alert"]["diagnosis"]["kind"] == "label_prior"
    slack = build_payload(alert, "slack")
    assert any("Label-prior shift" in str(b) for b in slack["blocks"])
    (am,) = build_payload(alert, "alertmanager")
    assert am["labels"]["diagnosis"] == "label_prior"
    assert "diagnosis" not in build_payload({"rule": "r"}, "generic")["alert"]


def test_bbsd_and_unknown_input_see_an_out_of_scope_mixture() -> None:
    rng = np.random.default_rng(5)
    ref = synthetic_frame(400, rng, with_probs=True)
    cur = synthetic_frame(200, rng, with_probs=True)
    assert cur.probs is not None and cur.embedding is not None
    flat = np.full((60, 4), 0.25, dtype=np.float32)  # 30 %: the model has no class for these
    far = rng.normal(size=(60, cur.embedding.shape[1])).astype(np.float32) * 3 - 2
    probs = np.concatenate([cur.probs[:140], flat])
    mixed = DriftFrame(predicted_label=cur.predicted_label, confidence=probs.max(axis=1).astype(float),
                       probs=probs, embedding=np.concatenate([cur.embedding[:140], far]))
    rep = DriftSuite(["embedding", "bbsd", "unknown_input"], seed=0).fit(ref).compute(mixed)
    assert rep.signal("bbsd").drifted and rep.signal("unknown_input").drifted  # type: ignore[union-attr]
    assert rep.diagnosis().kind == "out_of_scope"
    same = DriftSuite(["bbsd", "unknown_input"], seed=0).fit(ref).compute(ref)
    assert not same.drifted and same.diagnosis().kind == "none"
