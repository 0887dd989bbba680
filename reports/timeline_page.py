"""HTML of the timeline of one model: every signal over time, alerts, version changes, health."""

from __future__ import annotations

import math
from html import escape

from monitor.drift.names import SIGNALS
from reports import svg
from reports.history import History, SignalPoint
from reports.page import page

__all__ = ["timeline_page"]

_ORDER = SIGNALS


def _t(p: SignalPoint) -> float:
    return p.at.timestamp()


def _val(v: float | None) -> float:
    return float(v) if v is not None else math.nan


def _signal_charts(name: str, points: list[SignalPoint], hist: History,
                   x_range: tuple[float, float]) -> str:
    vlines = [svg.VLine(e.at.timestamp(), e.label, svg.COLORS["version"]) for e in hist.versions]
    markers = [svg.Marker(e.at.timestamp(), e.label, svg.COLORS["drifted"]) for e in hist.alerts]
    threshold = next((p.threshold for p in reversed(points) if p.threshold is not None), None)
    methods = sorted({p.method for p in points})
    has_p = any(p.p_value is not None for p in points)
    parts = [f'<section class="card signal" id="signal-{escape(name)}"><h2>{escape(name)}</h2>'
             f'<p class="note">method: {escape(", ".join(methods))}</p>']
    if all(p.statistic is None and p.p_value is None for p in points):
        reasons = sorted({p.status.replace("_", " ") for p in points})
        parts.append(f'<p class="note">Not tested in any of the {len(points)} runs '
                     f'({escape(", ".join(reasons))}).</p></section>')
        return "".join(parts)
    stat = svg.Series("statistic", [(_t(p), _val(p.statistic), p.drifted) for p in points],
                      svg.COLORS["reference"])
    if has_p:
        pv = svg.Series("p-value", [(_t(p), _val(p.p_value), p.drifted) for p in points],
                        svg.COLORS["current"])
        parts.append(svg.time_series([pv], title=f"{name}: p-value", ylabel="p-value (log)",
                                     threshold=threshold, log_y=True, vlines=vlines,
                                     markers=markers, x_range=x_range))
        parts.append(svg.time_series([stat], title=f"{name}: statistic", ylabel="statistic",
                                     vlines=vlines, x_range=x_range))
    else:
        parts.append(svg.time_series([stat], title=f"{name}: statistic", ylabel="statistic",
                                     threshold=threshold, vlines=vlines, markers=markers,
                                     x_range=x_range))
    parts.append("</section>")
    return "".join(parts)


def _health_charts(hist: History, x_range: tuple[float, float]) -> str:
    rows = hist.health or []
    if not rows:
        return ""
    vlines = [svg.VLine(e.at.timestamp(), e.label, svg.COLORS["version"]) for e in hist.versions]

    def series(key: str, name: str, color: str) -> svg.Series:
        return svg.Series(name, [(r["event_at"].timestamp(), _val(r.get(key)), False) for r in rows
                                 if r.get("event_at") is not None], color)

    lat = [series("latency_p50_ms", "p50", svg.COLORS["ok"]),
           series("latency_p95_ms", "p95", svg.COLORS["current"]),
           series("latency_p99_ms", "p99", svg.COLORS["drifted"])]
    ops = [series("error_rate", "error rate", svg.COLORS["drifted"])]
    drops = [series("dropped", "queue drops", svg.COLORS["warn"])]
    return ('<section class="card" id="health"><h2>Operational health</h2>'
            '<p class="note">Latency percentiles, serving errors and collector queue drops per window.</p>'
            + svg.time_series(lat, title="latency", ylabel="latency (ms)", vlines=vlines, x_range=x_range)
            + svg.time_series(ops, title="error rate", ylabel="error rate", vlines=vlines,
                              x_range=x_range)
            + svg.time_series(drops, title="queue drops", ylabel="dropped records", vlines=vlines,
                              x_range=x_range)
            + "</section>")


def timeline_page(hist: History, *, index_href: str) -> str:
    """The complete timeline page of one model."""
    times = [p.at.timestamp() for pts in hist.signals.values() for p in pts]
    times += [e.at.timestamp() for e in hist.alerts + hist.versions]
    x_range = (min(times), max(times)) if times else (0.0, 1.0)
    names = [n for n in _ORDER if n in hist.signals] + sorted(set(hist.signals) - set(_ORDER))
    n_runs = len({p.run_id for pts in hist.signals.values() for p in pts})
    summary = (f'<section class="card" id="summary"><div class="kv">'
               f"<div><b>{n_runs}</b><span>drift runs</span></div>"
               f"<div><b>{len(hist.alerts)}</b><span>alerts</span></div>"
               f"<div><b>{len(hist.versions)}</b><span>version changes</span></div></div>"
               '<p class="note">One point per drift run, at the end of its window. Red points: drifted '
               "windows; dashed red line: the signal's threshold (on the p-value when the signal has "
               "one); purple dashed lines: model-version changes (promotion, rollback); red triangles: "
               "alerts.</p>")
    if hist.versions:
        summary += ('<p class="note">Version changes: '
                    + "; ".join(f"{escape(e.at.strftime('%Y-%m-%d %H:%M'))} {escape(e.label)}"
                                for e in hist.versions) + "</p>")
    summary += "</section>"
    if not names:
        summary += '<section class="card"><p class="note">No drift runs yet.</p></section>'
    body = summary + "".join(_signal_charts(n, hist.signals[n], hist, x_range) for n in names)
    body += _health_charts(hist, x_range)
    return page(f"Timeline · {hist.model_name}", body, subtitle="drift signals over time (UTC)",
                nav=[("← all reports", index_href)])
