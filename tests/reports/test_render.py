"""Rendering from a store: files, report_path, offline HTML, text privacy, tokenizer [UNK] words."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store
from reports.render import render_all, render_run, run_file, timeline_file
from tests.conftest import make_tiny_bert
from tests.reports.conftest import build_store

# a resource the browser would fetch: src/href/action attributes, CSS url(), @import, <link>
_FETCHED = re.compile(r"""(?:\b(?:src|action|poster|data)\s*=\s*["']?\s*https?:|url\(\s*["']?\s*https?:|"""
                      r"""@import\s+["']?https?:|<link\b[^>]*https?:)""", re.IGNORECASE)
_SRCDOC = re.compile(r'srcdoc="([^"]*)"')
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)
_TAG_HREF = re.compile(r"<(?!a\b)[a-z][\w-]*\s[^<>]*\bhref\s*=\s*[\"']?https?:[^<>]*>", re.IGNORECASE)


def external_references(page: str) -> list[str]:
    """Network references in a page, including the Evidently document in its ``srcdoc``."""
    docs = [page] + [html.unescape(m) for m in _SRCDOC.findall(page)]
    found: list[str] = []
    for doc in docs:
        found += [doc[max(m.start() - 40, 0): m.end() + 40] for m in _FETCHED.finditer(doc)]
        # <a href="http..."> links are plain text links; any other tag with an http href is not
        markup = _SCRIPT.sub("<script></script>", doc)
        found += [m.group(0) for m in _TAG_HREF.finditer(markup)]
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("rendered")
    store = build_store(root / "db.duckdb")
    index = render_all(store, root / "out")
    yield store, root / "out", index
    store.close()


def test_render_all_writes_runs_timeline_and_index_and_sets_report_path(rendered: Any) -> None:
    store, out, index = rendered
    runs = store.fetch_dicts("reports_runs", {"model_name": None})
    assert len(runs) == 3 and index == out / "index.html"
    for run in runs:
        path = run_file(out, run["run_id"])
        assert path.exists()
        assert run["report_path"] == str(path.resolve())
    assert timeline_file(out, "support-sentiment").exists()
    page = index.read_text()
    assert page.count('href="runs/') == 3
    assert 'href="timeline-support-sentiment.html"' in page


def test_run_report_has_verdict_signals_sections_and_evidently(rendered: Any) -> None:
    store, out, _ = rendered
    runs = store.fetch_dicts("reports_runs", {"model_name": None})
    newest = runs[0]  # strongest shift
    page = run_file(out, newest["run_id"]).read_text()
    assert 'id="verdict" class="verdict drifted"' in page
    for section in ("signals", "distributions", "embedding", "what-changed", "evidently"):
        assert f'id="{section}"' in page
    assert "adjusted p (weighted Holm)" in page and "raw flag" in page
    assert re.search(r'data-diagnosis="(covariate|out_of_scope|label_prior|input_format)"', page)
    assert "Evidently&#x27;s own view" in page or "Evidently's own view" in page
    # the new topic words of the shifted window are found, with counts
    changed = page[page.index('id="what-changed"'):]
    assert re.search(r"<b>(refund|crypto|wallet|scam|blockchain|zxqvortex)</b>", changed)
    assert 'class="evidently"' in page and "drawDashboard" in html.unescape(page)
    # Evidently's 3.6 MB bundle is one shared file under assets/, linked relatively
    assert len(page) < 1_000_000
    shared = sorted((out / "assets").glob("evidently-*.js"))
    assert len(shared) == 1 and f'src=&quot;../assets/{shared[0].name}&quot;' in page
    assert "drawDashboard" in shared[0].read_text()
    assert page.count('<svg class="chart"') >= 5
    calm = run_file(out, runs[-1]["run_id"]).read_text()
    assert 'class="verdict ok"' in calm and 'data-diagnosis="none"' in calm
    verdict = calm[calm.index('id="verdict"'):calm.index('id="signals"')]
    assert "Drifted after correction" not in verdict  # one verdict, in consistent words


def test_pages_reference_nothing_on_the_network(rendered: Any) -> None:
    _, out, _ = rendered
    pages = list(out.rglob("*.html"))
    assert len(pages) == 5
    for path in pages:
        assert external_references(path.read_text()) == [], path


def test_external_reference_check_can_fail() -> None:
    assert external_references('<script src="https://cdn.example/x.js"></script>')
    assert external_references('<iframe srcdoc="&lt;link rel=&quot;stylesheet&quot; '
                               'href=&quot;https://fonts.example/a.css&quot;&gt;"></iframe>')
    assert external_references("<style>@font-face{src:url('https://x/y.woff2')}</style>")
    assert not external_references('<a href="https://docs.example/">docs</a>')


def test_timeline_has_threshold_alert_and_version_line(rendered: Any) -> None:
    _, out, _ = rendered
    page = timeline_file(out, "support-sentiment").read_text()
    for signal in ("embedding", "class_distribution", "confidence", "tokenizer"):
        assert f'id="signal-{signal}"' in page
    assert "threshold 0.01" in page
    assert "critical: embedding-and-confidence" in page  # alert marker
    assert "active → v1" in page  # version line
    assert "Not tested in any of the 3 runs" in page  # performance: no labels


def test_render_all_only_renders_missing_reports(rendered: Any) -> None:
    store, out, _ = rendered
    path = run_file(out, store.fetch_dicts("reports_runs", {"model_name": None})[0]["run_id"])
    before = path.stat().st_mtime_ns
    render_all(store, out)
    assert path.stat().st_mtime_ns == before


def test_without_text_logging_no_text_is_shown_only_hashes(tmp_path: Path) -> None:
    store = build_store(tmp_path / "db.duckdb", text=False, shifts=(0.9,), n_ref=200, n_cur=150)
    (run_id,) = [r["run_id"] for r in store.fetch_dicts("reports_runs", {"model_name": None})]
    page = render_run(store, run_id, tmp_path / "out").read_text()
    store.close()
    assert "sha256:" in page
    assert "Text logging is off" in page
    for word in ("battery", "zxqvortex", "refund"):
        assert word not in page


def test_unknown_words_come_from_the_model_versions_tokenizer(tmp_path: Path) -> None:
    artifact = make_tiny_bert(tmp_path / "v1")
    store = build_store(tmp_path / "db.duckdb", shifts=(0.9,), n_ref=200, n_cur=150,
                        artifact_dir=artifact)
    (run_id,) = [r["run_id"] for r in store.fetch_dicts("reports_runs", {"model_name": None})]
    page = render_run(store, run_id, tmp_path / "out").read_text()
    store.close()
    section = page[page.index("New [UNK]-producing words"):page.index("Most-shifted examples")]
    assert "tokenizer maps them to [UNK]" in section
    # "battery" and "phone" are in the tiny vocabulary, "zxqvortex" is not
    assert "<b>zxqvortex</b>" in section
    assert "<b>battery</b>" not in section and "<b>phone</b>" not in section


def test_cli_report_renders_into_a_directory(rendered: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import _register_all, app

    store, _, _ = rendered
    db = Path(store.path)
    store_copy = tmp_path / "copy.duckdb"
    # the fixture's store holds the file open; the CLI reads a checkpointed copy
    store.fetchall_sql("CHECKPOINT")
    store_copy.write_bytes(db.read_bytes())
    _register_all()
    result = CliRunner().invoke(app, ["report", "--db", str(store_copy), "--out", str(tmp_path / "o"),
                                      "--model", "support-sentiment"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "index.html").exists()
    assert len(list((tmp_path / "o" / "runs").glob("*.html"))) == 3
    with Store(store_copy) as copy:
        paths = [r["report_path"] for r in copy.fetch_dicts("reports_runs", {"model_name": None})]
    assert all(p and p.startswith(str((tmp_path / "o").resolve())) for p in paths)


def test_timeline_shows_health_windows_and_registry_promotions(rendered: Any, tmp_path: Path) -> None:
    from datetime import timedelta

    from reports.render import render_timeline
    from tests.reports.synthetic import MODEL, T0

    store, _, _ = rendered
    for i in range(3):
        store.fetchall_sql(
            "INSERT INTO health_windows (health_id, model_name, model_version, window_end, n_records, "
            "latency_p50_ms, latency_p95_ms, latency_p99_ms, n_errors, n_tokenizer_failures, error_rate, "
            "dropped) VALUES ($id, $m, 'v1', $t, 300, $p50, $p95, $p99, $e, 0, $r, $d)",
            {"id": f"h{i}", "m": MODEL, "t": T0 + timedelta(hours=i + 1), "p50": 10.0 + i,
             "p95": 30.0 + 5 * i, "p99": 60.0 + 20 * i, "e": i, "r": i / 300, "d": 10 * i})
    store.fetchall_sql(
        "INSERT INTO registry_events (event_id, model_name, kind, from_version, to_version, created_at) "
        "VALUES ('e1', $m, 'promote', 'v1', 'v2', $t)", {"m": MODEL, "t": T0 + timedelta(minutes=150)})
    page = render_timeline(store, MODEL, tmp_path).read_text()
    health = page[page.index('id="health"'):]
    assert health.count('<svg class="chart"') == 3
    assert "p99" in health and "queue drops" in health
    assert "promote → v2" in page


def test_a_run_whose_rows_were_deleted_still_renders(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = build_store(tmp_path / "db.duckdb", shifts=(0.9,), n_ref=100, n_cur=100)
    (run_id,) = [r["run_id"] for r in store.fetch_dicts("reports_runs", {"model_name": None})]
    store.delete_before(datetime(2100, 1, 1, tzinfo=UTC))
    page = render_run(store, run_id, tmp_path / "out").read_text()
    store.close()
    assert 'class="verdict drifted"' in page  # the stored verdict is still shown
    assert "the window&#x27;s rows are no longer stored" in page
