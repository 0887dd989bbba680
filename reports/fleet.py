"""The offline fleet page: a heat map of groups x hourly windows, each cell linking to its
window report (a small HTML page with the signals, and the window's JSON beside it)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["write_fleet_page"]

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 4px;font-size:12px}
td.ok{background:#d8f0d8}td.drift{background:#f3a6a6}td.na{background:#eee}
a{color:inherit;text-decoration:none}"""


def _slug(res: Mapping[str, Any]) -> str:
    group = res.get("group") or {}
    who = "-".join(f"{k}-{v}" for k, v in group.items()) or "fleet"
    start = str(res["window"]["start"])[:13].replace(":", "").replace("T", "-")
    return f"{res['model_name']}_{res['model_version']}_{start}_{who}".replace("/", "_")


def _cell_class(res: Mapping[str, Any]) -> str:
    if res.get("verdict", {}).get("status") not in (None, "ok"):
        return "na"
    return "drift" if res["drifted"] else "ok"


def _window_page(res: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(s['signal'])}</td><td>{html.escape(s['method'])}</td>"
        f"<td>{html.escape(s['status'])}</td><td>{s['p_value'] if s['p_value'] is not None else '-'}"
        f"</td><td>{'yes' if s['drifted'] else 'no'}</td></tr>" for s in res["signals"])
    group = res.get("group") or {"fleet": "all replicas"}
    title = (f"{res['model_name']} {res['model_version']} {res['window']['start']} "
             f"{', '.join(f'{k}={v}' for k, v in group.items())}")
    diag = res.get("diagnosis")
    diag_line = (f"<p>diagnosis: {html.escape(str(diag.get('kind')))}</p>"
                 if isinstance(diag, Mapping) else "")
    diag_line += _sketch_table(res.get("sketches") or {})
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><h1>{html.escape(title)}</h1>"
            f"<p>{'DRIFT' if res['drifted'] else 'no drift'} - {res['n_current']} rows vs "
            f"{res['n_reference']} reference rows</p>{diag_line}"
            "<table><tr><th>signal</th><th>method</th><th>status</th><th>p-value</th>"
            f"<th>drifted</th></tr>{rows}</table><p><a href=index.html>fleet</a></p>")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def _sketch_table(sketches: Mapping[str, Any]) -> str:
    """Quantiles of the KLL-sketched columns (informational, not in the verdict)."""
    if not sketches:
        return ""
    rows = []
    for col, s in sketches.items():
        q = s.get("quantiles", {})
        for side in ("reference", "current"):
            if side in q:
                rows.append(f"<tr><td>{html.escape(col)}</td><td>{side}</td>"
                            + "".join(f"<td>{_fmt(q[side].get(p))}</td>"
                                      for p in ("p50", "p95", "p99"))
                            + (f"<td>{_fmt(s.get('p_value'))}</td>" if side == "current"
                               else "<td></td>") + "</tr>")
    return ("<h2>Unbounded columns (KLL sketches; informational, not in the verdict)</h2>"
            "<table><tr><th>column</th><th>window</th><th>p50</th><th>p95</th><th>p99</th>"
            f"<th>KS p-value (error-aware)</th></tr>{''.join(rows)}</table>")


def write_fleet_page(results: Sequence[Mapping[str, Any]], out: str | Path, *,
                     generated_at: datetime) -> Path:
    """Write ``index.html`` (heat map) plus one page and one JSON file per result into ``out``."""
    root = Path(out)
    (root / "windows").mkdir(parents=True, exist_ok=True)
    columns = sorted({(r["model_name"], r["model_version"], r["window"]["start"])
                      for r in results})
    rows: dict[tuple[str, str, str], dict[tuple[str, str, str], Mapping[str, Any]]] = {}
    for r in results:
        group = r.get("group") or {}
        key = (r["model_name"], r["model_version"],
               ", ".join(f"{k}={v}" for k, v in group.items()) or "fleet")
        rows.setdefault(key, {})[(r["model_name"], r["model_version"], r["window"]["start"])] = r
        slug = _slug(r)
        (root / "windows" / f"{slug}.html").write_text(_window_page(r), encoding="utf-8")
        (root / "windows" / f"{slug}.json").write_text(json.dumps(r), encoding="utf-8")
    head = "".join(f"<th title='{html.escape(c[2])}'>{html.escape(c[2][5:13])}</th>"
                   for c in columns)
    body = []
    for (model, version, who), cells in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                         kv[0][2] != "fleet",
                                                                         kv[0][2])):
        tds = []
        for c in columns:
            res = cells.get(c)
            if res is None:
                tds.append("<td class=na></td>")
                continue
            mark = "&#9679;" if res["drifted"] else ""
            tds.append(f"<td class={_cell_class(res)}><a href='windows/{_slug(res)}.html'>"
                       f"{mark or '&middot;'}</a></td>")
        body.append(f"<tr><th>{html.escape(model)} {html.escape(version)} {html.escape(who)}</th>"
                    f"{''.join(tds)}</tr>")
    page = (f"<!doctype html><meta charset=utf-8><title>shiftwatch fleet</title><style>{_CSS}"
            f"</style><h1>Fleet drift</h1><p>generated {html.escape(generated_at.isoformat())}; "
            "red: drift (Holm verdict), green: no drift, grey: not tested</p>"
            f"<table><tr><th>group</th>{head}</tr>{''.join(body)}</table>")
    index = root / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
