"""Real-browser check: headless Chromium opens the index and a report, offline and error-free."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports.render import render_all, run_file
from tests.reports.browser import Browser
from tests.reports.conftest import build_store

pytestmark = pytest.mark.slow


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    """Rendered reports served on 127.0.0.1 by http.server in a thread."""
    root = tmp_path_factory.mktemp("site")
    store = build_store(root / "db.duckdb", shifts=(0.0, 0.9))
    out = root / "out"
    render_all(store, out)
    run_ids = [r["run_id"] for r in store.fetch_dicts("reports_runs", {"model_name": None})]
    store.close()
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", out, run_ids
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield b
    finally:
        b.close()


def _local_only(requests: list[str], base: str) -> list[str]:
    return [u for u in requests if not u.startswith((base, "data:", "about:", "blob:"))]


def test_index_page_in_chromium(site: tuple[str, Path, list[str]], browser: Browser, tmp_path: Path) -> None:
    base, _, run_ids = site
    browser.open(f"{base}/index.html")
    found = browser.wait_for("document.querySelectorAll('section.model tbody tr').length")
    assert found == len(run_ids)
    links = browser.evaluate("[...document.querySelectorAll('a[href^=\"runs/\"]')].length")
    assert links == len(run_ids)
    shot = browser.screenshot(tmp_path / "index.png")
    log = browser.log()
    assert log.errors == []
    assert _local_only(log.requests, base) == []
    assert shot.stat().st_size > 5_000


def test_report_page_in_chromium(site: tuple[str, Path, list[str]], browser: Browser, tmp_path: Path) -> None:
    base, out, run_ids = site
    drifted = run_ids[0]  # newest first: the shifted window
    browser.open(f"{base}/runs/{run_file(out, drifted).name}")
    verdict = browser.wait_for("(document.querySelector('#verdict') || {}).textContent")
    assert verdict and verdict.startswith("Drift detected")
    charts = browser.evaluate(
        "[...document.querySelectorAll('svg.chart')].filter(s => s.getBoundingClientRect().width > 100"
        " && s.querySelectorAll('rect,circle,polyline').length > 3).length")
    assert charts >= 5
    # Evidently's dashboard (React, JS bundle shared under assets/) renders inside its srcdoc iframe;
    # its per-column distribution sparklines are <canvas> elements
    evidently = browser.wait_for(
        "(() => { const f = document.getElementById('evidently-frame');"
        " const d = f && f.contentDocument; if (!d || !d.body) return 0;"
        " const drawn = [...d.querySelectorAll('canvas')].filter(c => c.width > 0 && c.height > 0);"
        " return d.body.innerText.includes('Dataset Drift') ? drawn.length : 0; })()", timeout_s=45)
    assert evidently >= 6  # reference + current sparkline for each of >= 3 columns
    height = browser.evaluate("document.getElementById('evidently-frame').getBoundingClientRect().height")
    assert height > 400
    shot = browser.screenshot(tmp_path / "report.png")
    log = browser.log()
    assert log.errors == []
    assert _local_only(log.requests, base) == []
    assert shot.stat().st_size > 20_000


Site = tuple[str, Path, list[str]]


def test_timeline_page_in_chromium(site: Site, browser: Browser, tmp_path: Path) -> None:
    base, _, _ = site
    browser.open(f"{base}/timeline-support-sentiment.html")
    n = browser.wait_for("document.querySelectorAll('section.signal svg.chart polyline').length")
    assert n >= 4
    browser.screenshot(tmp_path / "timeline.png")
    log = browser.log()
    assert log.errors == []
    assert _local_only(log.requests, base) == []
