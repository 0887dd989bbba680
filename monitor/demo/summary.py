"""The demo's closing summary, read back from DuckDB (``sql/queries/demo.sql``).

:func:`collect_summary` reads what happened — drift runs and the signals that
fired, alerts, actions, model versions, retrain decisions — and matches each
drift run to the traffic window it checked by time. :func:`render_summary`
prints it as rich tables. Accuracy figures are passed in by the caller: they
are computed against the data sets' true labels, which the monitor never
sees unless they are given to it as labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from monitor.demo.traffic import TrafficWindow
    from monitor.store import Store

__all__ = ["DemoSummary", "WindowSummary", "collect_summary", "render_summary"]


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """One traffic window and the drift run(s) that checked it."""

    name: str
    domain: str
    shifted: bool
    start: datetime
    end: datetime
    served_by: str | None  # model version that served the window
    run_ids: tuple[str, ...]
    drifted: bool | None  # None: no drift run covered this window
    signals_fired: tuple[str, ...]
    n_alerts: int
    rules: tuple[str, ...]
    actions: tuple[str, ...]
    accuracy: float | None  # against the data set's true labels


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """Everything the closing table shows."""

    model_name: str
    windows: tuple[WindowSummary, ...]
    n_alerts: int
    actions: tuple[dict[str, Any], ...]
    versions: tuple[dict[str, Any], ...]
    retrain_runs: tuple[dict[str, Any], ...]
    review_counts: dict[str, int]
    n_reports: int
    accuracy: dict[str, float] = field(default_factory=dict)  # e.g. {"v1 on held-out shifted": 0.71}
    index_path: Path | None = None


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else ()


def _as_dict(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def collect_summary(
    store: Store,
    model_name: str,
    windows: Sequence[TrafficWindow],
    *,
    served_by: Mapping[int, str] | None = None,
    window_accuracy: Mapping[int, float] | None = None,
    accuracy: Mapping[str, float] | None = None,
    index_path: Path | None = None,
) -> DemoSummary:
    """Read the story back from the store; drift runs are matched to windows by their end time."""
    runs = store.fetch_dicts("demo_windows", {"model_name": model_name})
    rows: list[WindowSummary] = []
    for w in windows:
        mine = [r for r in runs if r["window_end"] is not None and w.start < r["window_end"] <= w.end]
        signals = sorted({s for r in mine for s in _split(r["signals_fired"])})
        rows.append(WindowSummary(
            name=w.name, domain=w.domain, shifted=w.shifted, start=w.start, end=w.end,
            served_by=(served_by or {}).get(w.index),
            run_ids=tuple(str(r["run_id"]) for r in mine),
            drifted=any(bool(r["drifted"]) for r in mine) if mine else None,
            signals_fired=tuple(signals),
            n_alerts=sum(int(r["n_alerts"] or 0) for r in mine),
            rules=tuple(sorted({x for r in mine for x in _split(r["rules"])})),
            actions=tuple(x for r in mine for x in _split(r["actions"])),
            accuracy=(window_accuracy or {}).get(w.index),
        ))
    key = {"model_name": model_name}
    actions = tuple({**a, "detail": _as_dict(a["detail"])} for a in store.fetch_dicts("demo_actions", key))
    versions = tuple({**v, "metrics": _as_dict(v["metrics"])}
                     for v in store.fetch_dicts("demo_versions", key))
    retrains = tuple(
        {**r, "reasons": _as_dict(r["reasons"]), "metrics": _as_dict(r["metrics"])}
        for r in store.fetch_dicts("demo_retrain_runs", {"model_name": model_name})
    )
    review = {str(r["status"]): int(r["n"]) for r in store.fetch_dicts("demo_review_counts",
                                                                        {"model_name": model_name})}
    n_alerts = len(store.fetch_dicts("demo_alerts", {"model_name": model_name}))
    n_reports = len(store.fetch_dicts("demo_reported_runs", {"model_name": model_name}))
    return DemoSummary(model_name=model_name, windows=tuple(rows), n_alerts=n_alerts, actions=actions,
                       versions=versions, retrain_runs=retrains, review_counts=review, n_reports=n_reports,
                       accuracy=dict(accuracy or {}), index_path=index_path)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def render_summary(summary: DemoSummary, console: Console) -> None:
    """Print the closing tables: windows, versions and decisions, accuracy, where the reports are."""
    from rich.table import Table

    t = Table(title=f"shiftwatch demo — {summary.model_name}", show_lines=False, header_style="bold")
    for col in ("window", "simulated time (UTC)", "served by", "drift", "signals fired", "alerts",
                "actions", "accuracy*"):
        t.add_column(col, overflow="fold")
    for w in summary.windows:
        verdict = ("[dim]not checked[/]" if w.drifted is None
                   else "[bold red]DRIFT[/]" if w.drifted else "[green]ok[/]")
        t.add_row(
            w.name + (" [yellow](shifted)[/]" if w.shifted else ""),
            f"{w.start:%H:%M}–{w.end:%H:%M}",
            w.served_by or "—",
            verdict,
            ", ".join(w.signals_fired) or "—",
            str(w.n_alerts) + (f" ({', '.join(w.rules)})" if w.rules else ""),
            ", ".join(w.actions) or "—",
            _pct(w.accuracy),
        )
    console.print(t)
    console.print("[dim]* accuracy on every row of the window against the data sets' true labels, "
                  "computed by the demo; the monitor only sees the labels of the feedback share and of "
                  "reviewed rows.[/]")

    v = Table(title="model versions and decisions", header_style="bold")
    for col in ("version", "status", "parent", "reason"):
        v.add_column(col, overflow="fold")
    for mv in summary.versions:
        v.add_row(str(mv["version"]), str(mv["status"]), str(mv["parent_version"] or "—"),
                  str(mv["reason"] or "—"))
    console.print(v)
    for r in summary.retrain_runs:
        reasons = r["reasons"]
        text = "; ".join(str(x) for x in reasons) if isinstance(reasons, list) else str(reasons or "")
        console.print(f"retrain {r['run_id']}: candidate {r['candidate_version'] or '—'} → "
                      f"[bold]{r['status']}[/] {('— ' + text) if text else ''}"
                      f"{(' error: ' + str(r['error'])) if r.get('error') else ''}")

    if summary.accuracy:
        a = Table(title="accuracy on held-out data (true labels)", header_style="bold")
        a.add_column("model / data")
        a.add_column("accuracy", justify="right")
        for k, x in summary.accuracy.items():
            a.add_row(k, _pct(x))
        console.print(a)

    parts: list[str] = []
    for version in dict.fromkeys(w.served_by for w in summary.windows if w.served_by):
        mine = [w for w in summary.windows if w.served_by == version]
        shifted = [w for w in mine if w.shifted]
        home = [w for w in mine if not w.shifted]
        text = f"{version}: drift in {sum(1 for w in shifted if w.drifted)}/{len(shifted)} shifted"
        if home:
            text += f" and {sum(1 for w in home if w.drifted)}/{len(home)} in-domain"
        parts.append(text + " windows")
    kinds: dict[str, int] = {}
    for act in summary.actions:
        key = f"{act['kind']}:{act['status']}"
        kinds[key] = kinds.get(key, 0) + 1
    console.print(
        "; ".join(parts) + f"; {summary.n_alerts} alert(s); actions: "
        + (", ".join(f"{k}×{n}" for k, n in sorted(kinds.items())) or "none")
        + f"; review queue: {summary.review_counts or {}}; {summary.n_reports} window report(s)"
    )
    if summary.index_path is not None:
        console.print(f"[bold]reports:[/] {summary.index_path}")
