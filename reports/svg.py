"""Small inline-SVG charts: no JavaScript, no external resources, readable offline.

Each function returns one ``<svg class="chart">`` element as a string. Values
are data; all text is HTML-escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np

__all__ = [
    "COLORS",
    "Marker",
    "Series",
    "VLine",
    "bars",
    "histogram_chart",
    "nice_ticks",
    "scatter",
    "time_series",
    "time_ticks",
]

COLORS = {
    "reference": "#4c78a8",
    "current": "#f58518",
    "drifted": "#d62728",
    "ok": "#2ca02c",
    "warn": "#e8a33d",
    "grid": "#e5e7eb",
    "axis": "#6b7280",
    "text": "#1f2937",
    "threshold": "#d62728",
    "version": "#7c3aed",
}


def _f(x: float) -> str:
    return f"{x:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.4g}"
    if a >= 0.001:
        return f"{v:.3g}"
    return f"{v:.1e}"


def _open(width: int, height: int, title: str) -> list[str]:
    return [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="xMidYMid meet">',
            f"<title>{escape(title)}</title>"]


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for name, color in items:
        out.append(f'<rect x="{_f(x)}" y="{_f(y - 9)}" width="12" height="12" rx="2" fill="{color}"/>')
        out.append(f'<text x="{_f(x + 17)}" y="{_f(y + 1)}" class="lg">{escape(name)}</text>')
        x += 24 + 7.2 * len(name)
    return out


def bars(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str,
    value_fmt: str = "{:.1%}",
    max_labels: int = 25,
) -> str:
    """Horizontal paired bars (reference vs current) per label."""
    labels = list(labels)[:max_labels]
    n = len(labels)
    row_h, top, left, right = 34, 34, 130, 64
    width = 560
    height = top + max(n, 1) * row_h + 14
    vmax = max([*reference[:n], *current[:n], 1e-12])
    plot_w = width - left - right
    out = _open(width, height, title)
    out += _legend(left, 18, [("reference", COLORS["reference"]), ("current", COLORS["current"])])
    for i, lab in enumerate(labels):
        y = top + i * row_h
        name = lab if len(lab) <= 20 else lab[:19] + "…"
        out.append(f'<text x="{left - 8}" y="{_f(y + 20)}" class="tl" text-anchor="end">'
                   f"<title>{escape(lab)}</title>{escape(name)}</text>")
        for j, (vals, key) in enumerate(((reference, "reference"), (current, "current"))):
            v = float(vals[i])
            w = plot_w * v / vmax
            yy = y + 3 + j * 14
            out.append(f'<rect x="{left}" y="{_f(yy)}" width="{_f(max(w, 0.5))}" height="13" '
                       f'fill="{COLORS[key]}"><title>{escape(lab)} {key}: '
                       f"{escape(value_fmt.format(v))}</title></rect>")
            out.append(f'<text x="{_f(left + w + 5)}" y="{_f(yy + 10.5)}" class="vl">'
                       f"{escape(value_fmt.format(v))}</text>")
    out.append(f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{height - 10}" '
               f'stroke="{COLORS["axis"]}"/>')
    out.append("</svg>")
    return "".join(out)


def histogram_chart(
    edges: Sequence[float],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str,
    xlabel: str,
) -> str:
    """Reference (filled) and current (outlined) shares per bin on shared edges."""
    width, height = 560, 260
    left, right, top, bottom = 54, 16, 30, 44
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = float(edges[0]), float(edges[-1])
    ymax = max([*reference, *current, 1e-12])
    yt = nice_ticks(0.0, ymax, 4)
    ytop = yt[-1]

    def sx(v: float) -> float:
        return left + pw * (v - x0) / ((x1 - x0) or 1.0)

    def sy(v: float) -> float:
        return top + ph * (1 - v / ytop)

    out = _open(width, height, title)
    for t in yt:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(sy(t))}" y2="{_f(sy(t))}" '
                   f'stroke="{COLORS["grid"]}"/>')
        out.append(f'<text x="{left - 6}" y="{_f(sy(t) + 4)}" class="tk" text-anchor="end">'
                   f"{t:.0%}</text>")
    for i in range(len(edges) - 1):
        a, b = sx(float(edges[i])), sx(float(edges[i + 1]))
        r = float(reference[i])
        out.append(f'<rect x="{_f(a + 0.5)}" y="{_f(sy(r))}" width="{_f(max(b - a - 1, 0.5))}" '
                   f'height="{_f(top + ph - sy(r))}" fill="{COLORS["reference"]}" fill-opacity="0.45">'
                   f"<title>[{_fmt(float(edges[i]))}, {_fmt(float(edges[i + 1]))}) reference "
                   f"{r:.1%}</title></rect>")
    # current as a step outline
    pts = [f"{_f(sx(x0))},{_f(sy(0))}"]
    for i in range(len(edges) - 1):
        c = float(current[i])
        pts.append(f"{_f(sx(float(edges[i])))},{_f(sy(c))}")
        pts.append(f"{_f(sx(float(edges[i + 1])))},{_f(sy(c))}")
    pts.append(f"{_f(sx(x1))},{_f(sy(0))}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{COLORS["current"]}" '
               f'stroke-width="2.2"/>')
    for t in nice_ticks(x0, x1, 5):
        if x0 - 1e-9 <= t <= x1 + 1e-9:
            out.append(f'<text x="{_f(sx(t))}" y="{height - bottom + 16}" class="tk" '
                       f'text-anchor="middle">{escape(_fmt(t))}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" '
               f'stroke="{COLORS["axis"]}"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" class="ax" text-anchor="middle">'
               f"{escape(xlabel)}</text>")
    out += _legend(left + 4, 16, [("reference", COLORS["reference"]), ("current", COLORS["current"])])
    out.append("</svg>")
    return "".join(out)


def scatter(reference: np.ndarray, current: np.ndarray, *, title: str,
            explained: tuple[float, float]) -> str:
    """2-D scatter of projected reference and current points."""
    width, height = 560, 420
    left, right, top, bottom = 44, 16, 30, 40
    pw, ph = width - left - right, height - top - bottom
    both = np.vstack([reference, current]) if current.size else reference
    lo = np.percentile(both, 0.5, axis=0)
    hi = np.percentile(both, 99.5, axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def pts(xy: np.ndarray) -> np.ndarray:
        p = np.empty_like(xy, dtype=np.float64)
        p[:, 0] = left + pw * (xy[:, 0] - lo[0]) / (hi[0] - lo[0])
        p[:, 1] = top + ph * (1 - (xy[:, 1] - lo[1]) / (hi[1] - lo[1]))
        return np.clip(p, [left, top], [left + pw, top + ph])

    out = _open(width, height, title)
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="{COLORS["grid"]}"/>')
    for xy, key, r in ((reference, "reference", 2.2), (current, "current", 2.2)):
        color = COLORS[key]
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>' for x, y in pts(xy))
        out.append(f'<g fill="{color}" fill-opacity="0.45" class="pts-{key}">{dots}</g>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" class="ax" text-anchor="middle">'
               f"PC1 ({explained[0]:.0%} of reference variance)</text>")
    out.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" class="ax" '
               f'text-anchor="middle">PC2 ({explained[1]:.0%})</text>')
    out += _legend(left + 4, 18, [(f"reference ({len(reference):,})", COLORS["reference"]),
                                  (f"current ({len(current):,})", COLORS["current"])])
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Series:
    """A line over time: ``points`` = (epoch seconds, value, highlighted)."""

    name: str
    points: Sequence[tuple[float, float, bool]]
    color: str


@dataclass(frozen=True, slots=True)
class VLine:
    """A vertical line at ``at`` (epoch seconds) with a short label."""

    at: float
    label: str
    color: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A triangle on the top edge at ``at`` (epoch seconds), e.g. an alert."""

    at: float
    label: str
    color: str


_TIME_STEPS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
               604800, 2592000)


def time_ticks(t0: float, t1: float, max_ticks: int = 7) -> list[float]:
    """Round UTC times (epoch seconds) in ``[t0, t1]``: whole minutes, hours, days…"""
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    return [float(t) for t in np.arange(first, t1 + 1e-9, step)]


def _time_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, tz=UTC)
    if span < 600:
        return d.strftime("%H:%M:%S")
    if span < 86400:
        return d.strftime("%H:%M")
    return d.strftime("%m-%d %H:%M")


def time_series(
    series: Sequence[Series],
    *,
    title: str,
    ylabel: str,
    threshold: float | None = None,
    log_y: bool = False,
    vlines: Sequence[VLine] = (),
    markers: Sequence[Marker] = (),
    x_range: tuple[float, float] | None = None,
) -> str:
    """Lines over time with an optional horizontal threshold, vertical event lines
    (version changes) and top-edge markers (alerts); highlighted points are red."""
    width, height = 900, 250
    left, right, top, bottom = 62, 20, 36, 36
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for s in series for p in s.points] + [v.at for v in vlines] + [m.at for m in markers]
    ys = [p[1] for s in series for p in s.points if math.isfinite(p[1])]
    if threshold is not None:
        ys.append(threshold)
    if x_range is None:
        x_range = (min(xs), max(xs)) if xs else (0.0, 1.0)
    tx0, tx1 = x_range
    if tx1 <= tx0:
        tx0, tx1 = tx0 - 1800, tx1 + 1800
    pad = 0.03 * (tx1 - tx0)
    tx0, tx1 = tx0 - pad, tx1 + pad

    def tr(v: float) -> float:
        return math.log10(max(v, 1e-300)) if log_y else v

    if log_y:
        pos = [v for v in ys if v > 0] or [1e-3, 1.0]
        lo_e = math.floor(math.log10(max(min(pos), 1e-12)))
        hi_e = max(0, math.ceil(math.log10(max(pos))))
        if hi_e <= lo_e:
            lo_e = hi_e - 1
        y0, y1 = float(lo_e), float(hi_e)
        step = max(1, math.ceil((hi_e - lo_e) / 6))
        yticks = [(float(e), f"1e{e}" if e < -2 else _fmt(10.0**e)) for e in range(lo_e, hi_e + 1, step)]
    else:
        lo_v = min([*ys, 0.0]) if ys else 0.0
        hi_v = max(ys) if ys else 1.0
        ticks = nice_ticks(lo_v, hi_v if hi_v > lo_v else lo_v + 1, 4)
        y0, y1 = ticks[0], ticks[-1]
        yticks = [(t, _fmt(t)) for t in ticks]

    def sx(t: float) -> float:
        return left + pw * (t - tx0) / (tx1 - tx0)

    def sy(v: float) -> float:
        frac = (min(max(tr(v), y0), y1) - y0) / ((y1 - y0) or 1.0)
        return top + ph * (1 - frac)

    out = _open(width, height, title)
    for yv, lab in yticks:
        yy = top + ph * (1 - (yv - y0) / ((y1 - y0) or 1.0))
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(yy)}" y2="{_f(yy)}" '
                   f'stroke="{COLORS["grid"]}"/>')
        out.append(f'<text x="{left - 6}" y="{_f(yy + 4)}" class="tk" text-anchor="end">'
                   f"{escape(lab)}</text>")
    span = tx1 - tx0
    for t in time_ticks(tx0, tx1):
        out.append(f'<line x1="{_f(sx(t))}" x2="{_f(sx(t))}" y1="{top}" y2="{top + ph}" '
                   f'stroke="{COLORS["grid"]}"/>')
        out.append(f'<text x="{_f(sx(t))}" y="{height - bottom + 16}" class="tk" '
                   f'text-anchor="middle">{escape(_time_label(t, span))}</text>')
    out.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" class="ax" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    for v in vlines:
        x = sx(v.at)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{top}" y2="{top + ph}" stroke="{v.color}" '
                   f'stroke-dasharray="5 3" stroke-width="1.6"><title>{escape(v.label)}</title></line>')
        out.append(f'<text x="{_f(x + 4)}" y="{top + ph - 6}" class="ev" fill="{v.color}">'
                   f"{escape(v.label)}</text>")
    if threshold is not None and (not log_y or threshold > 0):
        yy = sy(threshold)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(yy)}" y2="{_f(yy)}" '
                   f'stroke="{COLORS["threshold"]}" stroke-dasharray="6 4" stroke-width="1.3"/>')
        out.append(f'<text x="{width - right - 4}" y="{_f(yy - 5)}" class="ev" text-anchor="end" '
                   f'fill="{COLORS["threshold"]}">threshold {escape(_fmt(threshold))}</text>')
    for s in series:
        finite = [(t, val, hi) for t, val, hi in s.points if math.isfinite(val)]
        if len(finite) > 1:
            path = " ".join(f"{_f(sx(t))},{_f(sy(val))}" for t, val, _ in finite)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"/>')
        for t, val, hi in finite:
            color = COLORS["drifted"] if hi else s.color
            out.append(f'<circle cx="{_f(sx(t))}" cy="{_f(sy(val))}" r="{4.5 if hi else 3.2}" '
                       f'fill="{color}" stroke="white" stroke-width="1"><title>{escape(s.name)} '
                       f"{escape(_time_label(t, 0))} UTC: {escape(_fmt(val))}"
                       f"{' (drifted)' if hi else ''}</title></circle>")
    for m in markers:
        x = sx(m.at)
        out.append(f'<path d="M{_f(x - 6)},{top - 12} L{_f(x + 6)},{top - 12} L{_f(x)},{top - 2} Z" '
                   f'fill="{m.color}"><title>{escape(m.label)}</title></path>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="{COLORS["axis"]}" stroke-width="0.8"/>')
    legend = [(s.name, s.color) for s in series]
    if markers:
        legend.append(("alert", COLORS["drifted"]))
    if vlines:
        legend.append(("version change", COLORS["version"]))
    out += _legend(left, 18, legend)
    out.append("</svg>")
    return "".join(out)
