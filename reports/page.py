"""The HTML page shell and small formatting helpers shared by every page.

Pages are self-contained: one inline stylesheet, no fonts, scripts or images
from anywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["STATUS_COLORS", "badge", "fmt_num", "fmt_ts", "page", "table"]

STATUS_COLORS = {"drifted": "#d62728", "ok": "#2ca02c", "warn": "#e8a33d", "none": "#9ca3af"}

_CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#ffffff;
        --red:#d62728; --green:#2ca02c; --amber:#e8a33d; --ref:#4c78a8; --cur:#f58518; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       Arial, sans-serif; color:var(--fg); background:var(--bg); }
header.top { background:#111827; color:#f9fafb; padding:14px 28px; display:flex; gap:24px;
             align-items:baseline; flex-wrap:wrap; }
header.top h1 { font-size:20px; margin:0; font-weight:600; }
header.top .sub { color:#d1d5db; font-size:14px; }
header.top nav a { color:#93c5fd; margin-right:14px; text-decoration:none; font-size:14px; }
header.top nav a:hover { text-decoration:underline; }
main { max-width:1180px; margin:0 auto; padding:20px 28px 60px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:10px;
               padding:18px 22px; margin:18px 0; }
section.card > h2 { font-size:17px; margin:0 0 4px; }
p.note { color:var(--muted); font-size:13.5px; margin:4px 0 10px; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(430px, 1fr)); gap:18px; }
.grid2 > div > h3 { font-size:14.5px; margin:6px 0; }
svg.chart { width:100%; height:auto; display:block; font-family:inherit; }
svg.chart text { fill:#374151; }
svg.chart .tk { font-size:11px; fill:#6b7280; }
svg.chart .ax { font-size:12px; fill:#4b5563; }
svg.chart .lg, svg.chart .tl { font-size:12.5px; }
svg.chart .vl { font-size:11px; fill:#4b5563; }
svg.chart .ev { font-size:11px; font-weight:600; }
table.data { border-collapse:collapse; width:100%; font-size:14px; }
table.data th { text-align:left; font-weight:600; color:#374151; border-bottom:2px solid var(--line);
                padding:6px 10px; white-space:nowrap; }
table.data td { border-bottom:1px solid var(--line); padding:6px 10px; vertical-align:top; }
table.data td.num, table.data th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.data tr:hover td { background:#f9fafb; }
td.text { max-width:640px; overflow-wrap:anywhere; }
td.nw, .nw { white-space:nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:13px; }
.badge { display:inline-block; border-radius:999px; padding:1px 10px; font-size:12.5px; font-weight:600;
         color:white; white-space:nowrap; }
.verdict { border-radius:10px; padding:16px 22px; margin:18px 0; color:white; }
.verdict h2 { margin:0; font-size:22px; }
.verdict p { margin:4px 0 0; font-size:14.5px; opacity:0.95; }
.verdict.drifted { background:linear-gradient(90deg,#b91c1c,#d62728); }
.verdict.ok { background:linear-gradient(90deg,#15803d,#2ca02c); }
.verdict.warn { background:linear-gradient(90deg,#b45309,#e8a33d); }
.kv { display:flex; flex-wrap:wrap; gap:10px 28px; margin:8px 0; }
.kv div { min-width:120px; } .kv b { display:block; font-size:20px; }
.kv span { color:var(--muted); font-size:12.5px; }
.dot { display:inline-block; width:12px; height:12px; border-radius:50%; vertical-align:-1px;
       margin-right:6px; }
iframe.evidently { width:100%; border:0; min-height:600px; display:block; }
a { color:#1d4ed8; }
footer { color:var(--muted); font-size:12.5px; text-align:center; margin:30px 0; }
"""


def page(title: str, body: str, *, subtitle: str = "", nav: Sequence[tuple[str, str]] = ()) -> str:
    """A complete HTML document with the shared stylesheet."""
    links = "".join(f'<a href="{escape(href)}">{escape(text)}</a>' for text, href in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>{escape(title)}</h1>'
        f'<span class="sub">{escape(subtitle)}</span><nav>{links}</nav></header>'
        f"<main>{body}</main><footer>shiftwatch report · generated offline</footer></body></html>\n"
    )


def fmt_num(value: Any, *, digits: int = 4) -> str:
    """A number for a table cell ("–" for missing or non-finite)."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return escape(str(value))
    if not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 10 ** -(digits - 1) or abs(x) >= 10**7):
        return f"{x:.{max(digits - 2, 1)}e}"
    if float(x).is_integer() and abs(x) < 10**7:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def fmt_ts(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def badge(text: str, color: str) -> str:
    """A coloured pill."""
    return f'<span class="badge" style="background:{color}">{escape(text)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = ()) -> str:
    """An HTML table; cells are already-escaped HTML; ``numeric`` columns align right."""
    num = set(numeric)
    head = "".join(f'<th{" class=num" if i in num else ""}>{escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in num else ""}>{c}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
