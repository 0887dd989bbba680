"""examples/grafana/shiftwatch.json and examples/prometheus/rules.yml reference only metrics a
live sidecar exports, and the rules parse (promtool when installed; always our own checks)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from monitor.persist.references import create_reference
from monitor.persist.runs import check_window
from monitor.server import create_app
from monitor.store import Store
from tests.server.helpers import AUTH, record, settings_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana" / "shiftwatch.json"
RULES = ROOT / "examples" / "prometheus" / "rules.yml"

# -- a small PromQL metric-name extractor -----------------------------------------------------
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan", "atan2", "e"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    out = set()
    for m in _IDENT.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        out.add(name)
    return out


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (model, signal) (rate(a_total{x="y", z=~"$model"}[5m]))', {"a_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
    ("x / on (model, status) group_left(version) y > 0.5 and z offset 5m", {"x", "y", "z"}),
    ('time() - last_ts{job="a:b"} > 3600', {"last_ts"}),
    ('count(up{instance="by(x)"}) or vector(0)', {"up"}),
    ("1e-9 + clamp_min(q, 1e-9)", {"q"}),
    ("{__name__=~\"a.*\"}", set()),
])
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# -- the live exposition ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every metric name a sidecar with some data exports on /metrics."""
    tmp = tmp_path_factory.mktemp("dash")
    store = Store(tmp / "sidecar.duckdb")
    store.insert_predictions([record(i) for i in range(80)])
    create_reference(store, "ref", store.read_window("m").slice(0, 40), model_name="m", model_version="v1")
    check_window(store, model_name="m", reference_name="ref", last_n=40)
    app = create_app(settings_for(tmp), store=store, start_scheduler=False, enrich=False)
    with TestClient(app) as c:
        c.post("/v1/predictions", json={"records": [record(1000)]}, headers=AUTH)
        text = c.get("/metrics", headers=AUTH).text
    store.close()
    names: set[str] = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names.update(fam.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    yield names


def _dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable {var['name']}", re.sub(r"label_values\((.*),\s*\w+\)", r"\1", query)))
    return out


def test_dashboard_panels_use_only_exported_metrics(exported: set[str]) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    used = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        missing = names - exported
        assert not missing, f"panel {title!r} uses metrics the sidecar does not export: {sorted(missing)}"
        used |= names
    # the list: drift p-values and verdicts, alerts, ingest and rejections, enrichment lag,
    # retrain state
    for needed in ("shiftwatch_drift_p_value", "shiftwatch_drift_signal_drifted",
                   "shiftwatch_alerts_fired_total", "shiftwatch_records_ingested_total",
                   "shiftwatch_records_rejected_total",
                   "shiftwatch_enrich_lag_seconds", "shiftwatch_retrain_runs"):
        assert needed in used


def test_dashboard_is_importable_json() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] == "shiftwatch"
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_use_only_exported_metrics_and_are_well_formed(exported: set[str]) -> None:
    rules = _rules()
    assert len(rules) >= 10
    alerts = [r["alert"] for r in rules]
    assert len(alerts) == len(set(alerts))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"])
        names = metric_names(rule["expr"])
        assert names and not names - exported, (rule["alert"], sorted(names - exported))
        assert rule["expr"].count("(") == rule["expr"].count(")")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)")
def test_rules_pass_promtool_check_and_unit_tests() -> None:
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in out.stdout
    # examples/prometheus/rules_test.yml: series in, alerts (labels, annotations) out
    out = subprocess.run(["promtool", "test", "rules", str(RULES.with_name("rules_test.yml"))],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
