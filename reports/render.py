"""Render drift reports to HTML files: per run, per model timeline, and the index.

The public entry points of the reports package. They read from the store,
prepare data with the pure modules (:mod:`reports.content`), format it
(:mod:`reports.run_page`, :mod:`reports.timeline_page`,
:mod:`reports.index_page`) and write self-contained files atomically::

    out_dir/index.html
    out_dir/timeline-<model>.html
    out_dir/runs/<run_id>.html        (path remembered in drift_runs.report_path)
    out_dir/assets/evidently-<sha>.js|css   Evidently's bundle, one shared copy for all run pages
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from monitor.errors import ShiftwatchError, StoreError
from monitor.store import Store
from reports.content import ShiftFn, UnknownFn, prepare_run
from reports.history import load_history, load_run, load_runs
from reports.index_page import index_page
from reports.run_page import run_page
from reports.timeline_page import timeline_page

__all__ = ["render_all", "render_index", "render_run", "render_timeline", "run_file", "timeline_file"]

log = logging.getLogger(__name__)

#: Windows larger than this are sampled (seeded) before rendering, to bound render time.
MAX_ROWS = 20_000


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return slug or "unnamed"


def run_file(out_dir: Path, run_id: str) -> Path:
    """Where the report of ``run_id`` goes under ``out_dir``."""
    return Path(out_dir) / "runs" / f"{_slug(run_id)}.html"


def timeline_file(out_dir: Path, model_name: str) -> Path:
    """Where the timeline of ``model_name`` goes under ``out_dir``."""
    return Path(out_dir) / f"timeline-{_slug(model_name)}.html"


def _write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write report {path}: {exc}") from exc
    return path


def _sample(table: pa.Table, cap: int, seed: int) -> pa.Table:
    if table.num_rows <= cap:
        return table
    idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, cap, replace=False))
    return table.take(pa.array(idx))


def _current_window(store: Store, run: Mapping[str, Any]) -> pa.Table:
    model, version = str(run["model_name"]), str(run["model_version"])
    start, end = run.get("window_start"), run.get("window_end")
    if start is None and end is None:
        return store.read_window(model, model_version=version, last_n=int(run["n_current"]))
    table = store.read_window(model, model_version=version, start=start, end=end)
    if end is not None and table.num_rows < int(run["n_current"]):
        # the run may have recorded an inclusive end (the newest row's timestamp)
        table = store.read_window(model, model_version=version, start=start,
                                  end=end + timedelta(microseconds=1))
    return table


def _reference(store: Store, run: Mapping[str, Any], like: pa.Table) -> tuple[pa.Table, str]:
    from monitor.persist import references

    name = run.get("reference_name")
    if not name:
        name = references.reference_for(store, str(run["model_name"]), str(run["model_version"]))
    if not name:
        return like.slice(0, 0), "the run names no reference set"
    try:
        return references.load_reference(store, str(name)), ""
    except ShiftwatchError as exc:
        log.warning("reference %s of run %s: %s", name, run.get("run_id"), exc)
        return like.slice(0, 0), f"reference '{name}' could not be read: {exc}"


def _shift_fn() -> ShiftFn | None:
    from monitor.drift.shift import shift_scores

    def score(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return np.asarray(shift_scores(ref, cur, seed=0))

    return score


@lru_cache(maxsize=8)
def _tokenizer(directory: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def _unknown_fn(store: Store, run: Mapping[str, Any]) -> UnknownFn | None:
    """``[UNK]`` check with the model version's tokenizer, when its artifacts are on disk."""
    rows = store.fetch_dicts("reports_model_version", {"model_name": run["model_name"],
                                                       "version": run["model_version"]})
    artifact = rows[0].get("artifact_dir") if rows else None
    if not artifact:
        return None
    for candidate in (Path(artifact), Path(artifact) / "tokenizer"):
        if not (candidate / "tokenizer_config.json").exists() and not (candidate / "vocab.txt").exists():
            continue
        try:
            tok = _tokenizer(str(candidate))
        except (OSError, ValueError, ImportError) as exc:
            log.warning("tokenizer of %s: %s", candidate, exc)
            continue
        unk = tok.unk_token_id
        if unk is None:
            return None

        def is_unknown(words: Sequence[str], tok: Any = tok, unk: int = unk) -> list[bool]:
            if not words:
                return []
            ids = tok(list(words), add_special_tokens=False)["input_ids"]
            return [unk in row for row in ids]

        return is_unknown
    return None


def _evidently_section(content_ref: Mapping[str, np.ndarray], content_cur: Mapping[str, np.ndarray],
                       note: str, assets_dir: Path) -> str:
    from html import escape

    from reports.evidently_section import evidently_frame, evidently_html, share_assets

    if note:
        return f'<p class="note">Not available: {escape(note)}.</p>'
    try:
        return evidently_frame(share_assets(evidently_html(content_ref, content_cur), assets_dir,
                                            "../assets/"))
    except Exception as exc:  # Evidently is third-party: never let it break the rest of the page
        log.exception("Evidently report failed")
        reason = f"{type(exc).__name__}: {exc}"
        return f'<p class="note">The Evidently report failed: {escape(reason)}</p>'


def render_run(store: Store, run_id: str, out_dir: Path, *, current: pa.Table | None = None,
               reference: pa.Table | None = None) -> Path:
    """Write the report of one drift run; remember its path in ``drift_runs.report_path``.

    ``current`` / ``reference``: the run's window and reference records when the caller holds
    them already (the scheduler's in-memory window check); otherwise they are read from the store.
    Numerical work runs with single-threaded BLAS: the sidecar shares its cores with the
    serving process, and multi-threaded BLAS on busy cores is many times slower.
    """
    from threadpoolctl import threadpool_limits

    out_dir = Path(out_dir)
    run = load_run(store, run_id)
    current = _sample(current if current is not None else _current_window(store, run), MAX_ROWS, seed=1)
    if reference is None:
        reference, ref_note = _reference(store, run, current)
    else:
        ref_note = ""
    reference = _sample(reference, MAX_ROWS, seed=2)
    unknown_fn = _unknown_fn(store, run) if current.num_rows else None
    note = ref_note or ("" if current.num_rows else "the window's rows are no longer stored")
    with threadpool_limits(limits=1):
        content = prepare_run(run, run["report"], reference, current, shift_fn=_shift_fn(),
                              unknown_fn=unknown_fn)
        evidently = _evidently_section(content.scalars_reference, content.scalars_current, note,
                                       out_dir / "assets")
    path = run_file(out_dir, run_id)
    html = run_page(content, evidently, index_href="../index.html",
                    timeline_href=f"../{timeline_file(out_dir, str(run['model_name'])).name}")
    _write(path, html)
    store.execute("reports_set_path", {"run_id": run_id, "report_path": str(path.resolve())})
    return path


def render_timeline(store: Store, model_name: str, out_dir: Path) -> Path:
    """Write the timeline page of one model."""
    hist = load_history(store, model_name)
    return _write(timeline_file(Path(out_dir), model_name), timeline_page(hist, index_href="index.html"))


def render_index(store: Store, out_dir: Path) -> Path:
    """Write ``index.html``: every model's runs, newest first, linking the reports on disk."""
    out_dir = Path(out_dir)
    runs = load_runs(store)

    def href(run: Mapping[str, Any]) -> str | None:
        path = run_file(out_dir, str(run["run_id"]))
        return f"runs/{path.name}" if path.exists() else None

    def timeline(model: str) -> str:
        return timeline_file(out_dir, model).name

    return _write(out_dir / "index.html", index_page(runs, run_href=href, timeline_href=timeline))


def render_all(store: Store, out_dir: Path, *, model_name: str | None = None) -> Path:
    """Render reports of runs that have none in ``out_dir``, the timelines, and the index.

    A run whose report cannot be rendered is logged and skipped. Returns the index path.
    """
    out_dir = Path(out_dir)
    runs = load_runs(store, model_name)
    for run in runs:
        run_id = str(run["run_id"])
        if run_file(out_dir, run_id).exists():
            continue
        try:
            render_run(store, run_id, out_dir)
        except ShiftwatchError as exc:
            log.warning("report of run %s not rendered: %s", run_id, exc)
    for model in sorted({str(r["model_name"]) for r in runs}):
        render_timeline(store, model, out_dir)
    return render_index(store, out_dir)
