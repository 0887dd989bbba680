"""HTML of the index: one section per model, its reports newest first, coloured by status."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from reports.page import STATUS_COLORS, fmt_num, fmt_ts, page, table
from reports.run_page import run_status

__all__ = ["index_page"]

_LABELS = {"drifted": "drift", "ok": "no drift", "warn": "incomplete"}


def index_page(
    runs: Sequence[Mapping[str, Any]],
    *,
    run_href: Callable[[Mapping[str, Any]], str | None],
    timeline_href: Callable[[str], str],
) -> str:
    """The index page. ``runs`` come grouped by model, newest first (``reports_runs`` order),
    each with its ``report`` (:func:`reports.history.load_runs`)."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_model.setdefault(str(run["model_name"]), []).append(run)
    sections = []
    for model, items in sorted(by_model.items()):
        rows = []
        counts = {"drifted": 0, "ok": 0, "warn": 0}
        for run in items:
            status = run_status(bool(run["drifted"]), list(run.get("statuses") or []))
            counts[status] += 1
            report = run.get("report")
            drifted = [s.signal for s in report.signals if s.drifted] if report is not None else []
            href = run_href(run)
            when = fmt_ts(run.get("window_end") or run.get("created_at"))
            link = (f'<a class="nw" href="{escape(href)}">{escape(when)}</a>' if href
                    else f'<span class="nw">{escape(when)}</span>')
            rows.append([
                f'<span class="nw"><span class="dot" style="background:{STATUS_COLORS[status]}"></span>'
                f"{escape(_LABELS[status])}</span>",
                link, escape(str(run["model_version"])), fmt_num(run.get("n_current")),
                escape(", ".join(drifted) or "–"), f"<span class=mono>{escape(str(run['run_id']))}</span>",
            ])
        latest = run_status(bool(items[0]["drifted"]), list(items[0].get("statuses") or []))
        sections.append(
            f'<section class="card model" id="model-{escape(model)}">'
            f'<h2><span class="dot" style="background:{STATUS_COLORS[latest]}"></span>{escape(model)}</h2>'
            f'<p class="note">{len(items)} runs · {counts["drifted"]} with drift · '
            f'<a href="{escape(timeline_href(model))}">timeline</a></p>'
            + table(["status", "window end", "version", "rows", "drifted signals", "run"], rows,
                    numeric=(3,))
            + "</section>")
    if not sections:
        sections.append('<section class="card"><p class="note">No drift runs yet.</p></section>')
    return page("shiftwatch reports", "".join(sections), subtitle="drift runs, newest first")
