"""Review queue round trip (CSV / JSONL) and the ops CLI commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from monitor.cli import _register_all, app
from monitor.errors import ConfigError
from monitor.review import export_queue, import_labels
from monitor.store import Store
from tests.ops.conftest import T0, make_records, seed_reference


def queue(store: Store, n: int = 5) -> list[dict]:
    recs = make_records(n, seed=7, start=T0)
    store.insert_predictions(recs)
    table = pa.table({"event_id": [r["event_id"] for r in recs], "model_name": ["sentiment"] * n,
                      "run_id": ["r1"] * n, "reason": ["low_confidence"] * n,
                      "score": [0.1 * i for i in range(n)]})
    with store.registered("_review", table):
        store.execute("ops_review_insert")
    return recs


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_fill_import_round_trip(store: Store, tmp_path: Path, suffix: str) -> None:
    recs = queue(store)
    out = tmp_path / f"queue{suffix}"
    assert export_queue(store, out) == 5
    if suffix == ".csv":
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["event_id"] for r in rows} == {r["event_id"] for r in recs}
    assert all(r["label"] in ("", None) and r["text"].startswith("synthetic") for r in rows)
    for i, r in enumerate(rows):  # the labeller fills three rows and leaves two blank
        r["label"] = ["positive", "negative", "positive", "", ""][i]
    if suffix == ".csv":
        with out.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = import_labels(store, out)
    assert (result.labeled, result.skipped) == (3, 2)
    labelled = dict(store.fetchall_sql("SELECT event_id, label FROM labels"))
    assert labelled == {rows[i]["event_id"]: rows[i]["label"] for i in range(3)}
    assert store.fetchall_sql("SELECT status, count(*) FROM review_queue GROUP BY 1 ORDER BY 1") == [
        ("labeled", 3), ("pending", 2)]
    window = store.read_window("sentiment")
    merged = {e: lab for e, lab in zip(window["event_id"].to_pylist(), window["label"].to_pylist(),
                                       strict=True) if lab}
    assert merged == labelled  # delayed labels reach the drift windows
    assert import_labels(store, out).labeled == 3  # re-import: same labels, nothing new
    assert store.fetchall_sql("SELECT count(*) FROM labels")[0][0] == 3
    assert export_queue(store, tmp_path / f"pending{suffix}") == 2


def test_import_errors_name_file_and_line(store: Store, tmp_path: Path) -> None:
    queue(store, 2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event_id": "nope", "label": "positive"}\n{"label": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: field 'event_id': required string is missing"):
        import_labels(store, bad)
    bad.write_text('{"event_id": "nope", "label": "positive"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: field 'event_id': no stored prediction 'nope'"):
        import_labels(store, bad)
    bad.write_text('{"event_id": "x", "label": 3}\nnot json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: invalid JSON"):
        import_labels(store, bad)
    eid = queue(store, 1)[0]["event_id"]
    bad.write_text(f'{{"event_id": "{eid}", "label": "a"}}\n{{"event_id": "{eid}", "label": "b"}}\n',
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: field 'event_id': repeats line 1"):
        import_labels(store, bad)
    bad.write_text(json.dumps({"event_id": eid, "label": "x" * 201}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: field 'label': longer than 200"):
        import_labels(store, bad)
    bad.write_text('{"event_id": "x", "n": ' + "9" * 5000 + "}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: invalid JSON"):
        import_labels(store, bad)
    csv_bad = tmp_path / "bad.csv"
    csv_bad.write_text("id,label\n1,a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.csv:1: the header needs"):
        import_labels(store, csv_bad)
    with pytest.raises(ConfigError, match=r"use a \.csv or \.jsonl"):
        export_queue(store, tmp_path / "q.xlsx")
    assert store.fetchall_sql("SELECT count(*) FROM labels")[0][0] == 0


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(c.name == "check" for c in app.registered_commands):
        _register_all()
    return CliRunner()


def test_cli_check_policy_and_review(tmp_path: Path, runner: CliRunner) -> None:
    db = tmp_path / "cli.duckdb"
    with Store(db) as store:
        seed_reference(store)
        store.insert_predictions(make_records(300, seed=2, start=T0, shift=0.8, conf_a=3, conf_b=3))
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - name: drift\n    when: {all: [{signal: embedding, drifted: true}]}\n"
                      "    actions: [notify, review]\n", encoding="utf-8")
    ok = runner.invoke(app, ["policy", "validate", str(policy)])
    assert ok.exit_code == 0 and "1 rule(s): drift" in ok.output
    res = runner.invoke(app, ["check", "--db", str(db), "--policy", str(policy), "--dry-run",
                              "--no-reports", "--json"], env={"SHIFTWATCH_WINDOW_SIZE": "300"})
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["ok"] and len(summary["drift_runs"]) == 1
    assert [(a["kind"], a["status"]) for a in summary["actions"]] == [("notify", "dry_run"),
                                                                      ("review", "dry_run")]
    text = runner.invoke(app, ["check", "--db", str(db), "--policy", str(policy), "--no-reports"],
                         env={"SHIFTWATCH_WINDOW_SIZE": "300"})
    assert text.exit_code == 0 and "skipped sentiment: no complete new window" in text.output
    exp = runner.invoke(app, ["review", "export", str(tmp_path / "q.csv"), "--db", str(db)])
    assert exp.exit_code == 0 and "exported 0 row(s)" in exp.output  # the dry run queued nothing
    imp = runner.invoke(app, ["review", "import", str(tmp_path / "q.csv"), "--db", str(db)])
    assert imp.exit_code == 0 and "imported 0 label(s)" in imp.output


def test_cli_policy_validate_reports_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: a\n    when: {all: [{signal: embedding, drifted: maybe}]}\n",
                   encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", "from monitor.cli import main; main()", "policy",
                           "validate", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {bad}:3: rules[0].when.all[0].drifted: "
                                   "Input should be a valid boolean, unable to interpret input")


def test_import_reports_labels_outside_the_label_set_and_keeps_them(store: Store, tmp_path: Path) -> None:
    recs = queue(store, n=6)
    version = recs[0]["model_version"]
    store.fetchall_sql("INSERT INTO model_versions (model_name, version, status, preprocessing) "
                       "VALUES ('sentiment', $v, 'active', $p)",
                       {"v": version, "p": json.dumps({"labels": ["negative", "positive"]})})
    out = tmp_path / "q.jsonl"
    export_queue(store, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for r, label in zip(rows, ["positive", "refund", "refund", "shipping", "negative", ""], strict=True):
        r["label"] = label
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = import_labels(store, out)
    assert (result.labeled, result.skipped) == (5, 1)
    assert result.out_of_scope == {"refund": 2, "shipping": 1} and result.n_out_of_scope == 3
    assert result.to_dict()["n_out_of_scope"] == 3
    line = result.describe()
    assert "3 label(s) outside the model's label set" in line and "'refund' x2" in line
    # kept as evidence: stored, and found by the guard's out-of-scope query, not by the training rows
    stored = dict(store.fetchall_sql("SELECT label, count(*) FROM labels GROUP BY 1"))
    assert stored == {"positive": 1, "negative": 1, "refund": 2, "shipping": 1}
    params = {"model_name": "sentiment", "ingested_since": None, "n": 100, "labels": ["negative", "positive"]}
    oos = store.fetch_dicts("promotion_out_of_scope_rows", params)
    assert sorted(r["label"] for r in oos) == ["refund", "refund", "shipping"]
