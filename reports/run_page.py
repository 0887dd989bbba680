"""HTML of one per-window report, from a prepared :class:`~reports.content.RunContent`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from reports import svg
from reports.content import RunContent
from reports.examples import Example
from reports.page import STATUS_COLORS, badge, fmt_num, fmt_ts, page, table

__all__ = ["run_page", "run_status"]

_SIGNAL_TITLES = {
    "embedding": "Embeddings", "class_distribution": "Predicted classes", "confidence": "Confidence",
    "tokenizer": "Tokenizer", "performance": "Performance",
}
_HIST_TITLES = {
    "confidence": "Confidence (max class probability)", "entropy": "Prediction entropy (nats)",
    "n_tokens": "Tokens per input", "unk_rate": "[UNK] share of tokens",
}


def run_status(drifted: bool, statuses: Sequence[str]) -> str:
    """``drifted`` | ``warn`` (a signal failed, or none could be tested) | ``ok``.

    A signal with ``insufficient_data`` alone (e.g. performance before labels
    arrive) does not make a run incomplete."""
    if drifted:
        return "drifted"
    if any(s == "error" for s in statuses) or (statuses and all(s != "ok" for s in statuses)):
        return "warn"
    return "ok"


def _signal_badge(sig: Mapping[str, Any]) -> str:
    status = sig.get("status", "ok")
    if status == "ok":
        return badge("drifted", STATUS_COLORS["drifted"]) if sig.get("drifted") else badge(
            "ok", STATUS_COLORS["ok"])
    return badge(str(status).replace("_", " "), STATUS_COLORS["warn" if status != "error" else "none"])


def _verdict(content: RunContent) -> str:
    run, result = content.run, content.result
    signals = list(result.get("signals") or [])
    drifted = bool(result.get("drifted", run.get("drifted")))
    status = run_status(drifted, [str(s.get("status", "ok")) for s in signals])
    names = [_SIGNAL_TITLES.get(str(s.get("signal")), str(s.get("signal"))) for s in signals
             if s.get("drifted")]
    headline = {"drifted": "Drift detected", "ok": "No drift detected",
                "warn": "No drift detected, but signals could not be tested"}[status]
    detail = (("Drifted: " + ", ".join(names) + ".") if names
              else "Every tested signal is within its threshold.")
    verdict = result.get("verdict")
    per_signal: dict[str, dict[str, Any]] = {}
    extras: list[str] = []
    if isinstance(verdict, Mapping):
        tests = verdict.get("tests")
        if isinstance(tests, list):
            per_signal["Holm-adjusted p"] = {str(t.get("signal")): t.get("adjusted_p_value")
                                             for t in tests if isinstance(t, Mapping)}
        for key, value in verdict.items():
            if isinstance(value, Mapping) and value and all(
                    isinstance(v, int | float) or v is None for v in value.values()):
                per_signal[str(key)] = dict(value)
            elif isinstance(value, str | int | float | bool) or value is None:
                shown = value if isinstance(value, str) else fmt_num(value)
                extras.append(f"{escape(str(key))}: <b>{escape(shown)}</b>")
    extra_cols = list(per_signal)
    rows = []
    for s in signals:
        name = str(s.get("signal"))
        rows.append([
            f"<b>{escape(_SIGNAL_TITLES.get(name, name))}</b> <span class=mono>{escape(name)}</span>",
            f"<span class=mono>{escape(str(s.get('method', '')))}</span>",
            fmt_num(s.get("statistic")), fmt_num(s.get("p_value")),
            *[fmt_num(per_signal[c].get(name)) for c in extra_cols],
            fmt_num(s.get("threshold")), _signal_badge(s),
        ])
    headers = ["signal", "method", "statistic", "p-value", *[c.replace("_", " ") for c in extra_cols],
               "threshold", "status"]
    numeric = range(2, 3 + len(extra_cols) + 2)
    window = f"{fmt_ts(run.get('window_start'))} → {fmt_ts(run.get('window_end'))}"
    facts = [
        ("model", f"{run.get('model_name')} {run.get('model_version')}"),
        ("window", window), ("reference", str(run.get("reference_name") or "–")),
        ("rows", f"{fmt_num(result.get('n_current', run.get('n_current')))} current · "
                 f"{fmt_num(result.get('n_reference', run.get('n_reference')))} reference"),
    ]
    fact_html = " · ".join(f"{escape(k)}: <b>{escape(v)}</b>" for k, v in facts)
    return (
        f'<div id="verdict" class="verdict {status}" data-status="{status}"><h2>{escape(headline)}</h2>'
        f"<p>{escape(detail)}</p><p>{fact_html}</p></div>"
        '<section class="card" id="signals"><h2>Signals</h2>'
        '<p class="note">Each signal tests the current window against the reference; p-value signals '
        "are drifted when p &lt; threshold, others when the statistic crosses it. The overall verdict "
        "corrects for testing several signals at once (Holm).</p>"
        + table(headers, rows, numeric=numeric)
        + (f'<p class="note">Verdict: {" · ".join(extras)}</p>' if extras else "")
        + "</section>"
    )


def _distributions(content: RunContent) -> str:
    c = content.classes
    parts = ['<section class="card" id="distributions"><h2>Predictions</h2><div class="grid2">']
    if c.labels:
        parts.append("<div><h3>Predicted class shares</h3>"
                     + svg.bars(c.labels, c.reference, c.current, title="Predicted class shares")
                     + "</div>")
    for name, hist in content.histograms.items():
        title = _HIST_TITLES.get(name, name)
        parts.append(f"<div><h3>{escape(title)}</h3>"
                     + svg.histogram_chart(hist.edges, hist.reference, hist.current, title=title,
                                           xlabel=title) + "</div>")
    parts.append("</div></section>")
    return "".join(parts)


def _embedding(content: RunContent) -> str:
    body = ('<section class="card" id="embedding"><h2>Embedding view</h2>'
            '<p class="note">2-D PCA fitted on the reference; both windows projected on the same axes '
            "(a capped random sample of points).</p>")
    if content.projection is None:
        return body + f'<p class="note">{escape(content.projection_note)}</p></section>'
    p = content.projection
    return (body + '<div style="max-width:720px">'
            + svg.scatter(p.reference, p.current, title="Embeddings, PCA of the reference",
                          explained=p.explained) + "</div></section>")


def _examples_table(items: Sequence[Example], score_name: str) -> str:
    if not items:
        return '<p class="note">No rows.</p>'
    rows = [[f"<span class=mono>{escape(e.event_id[:18])}</span>",
             escape(e.shown) if e.is_text else f"<span class=mono>{escape(e.shown)}</span>",
             escape(e.predicted_label), fmt_num(e.confidence, digits=3),
             fmt_num(e.score, digits=3)] for e in items]
    if not score_name:
        return table(["event", "text", "predicted", "confidence"], [r[:4] for r in rows], numeric=(3,))
    return table(["event", "text", "predicted", "confidence", score_name], rows, numeric=(3, 4))


def _what_changed(content: RunContent) -> str:
    parts = ['<section class="card" id="what-changed"><h2>What changed</h2>']
    if not content.text_logged:
        parts.append('<p class="note">Text logging is off for this model (privacy default), so word-level '
                     "comparisons are unavailable; examples are identified by text hash.</p>")
    else:
        parts.append("<h3>Words over-represented in the current window</h3>"
                     '<p class="note">Weighted log-odds with an informative Dirichlet prior '
                     "(z-score; rare words are shrunk towards no change). Rates per 1,000 words.</p>")
        if content.tokens:
            rows = [[f"<b>{escape(t.token)}</b>", fmt_num(t.z, digits=3), fmt_num(t.current_rate, digits=3),
                     fmt_num(t.reference_rate, digits=3), fmt_num(t.current_count),
                     fmt_num(t.reference_count)] for t in content.tokens]
            parts.append(table(["word", "z", "current /1k", "reference /1k", "current n", "reference n"],
                               rows, numeric=(1, 2, 3, 4, 5)))
        else:
            parts.append('<p class="note">No word is significantly over-represented.</p>')
        how = ("the model version's tokenizer maps them to [UNK]" if content.unknown_method == "tokenizer"
               else "no tokenizer available: words never seen in the reference window")
        parts.append(f'<h3>New [UNK]-producing words</h3><p class="note">{escape(how)}.</p>')
        if content.unknown:
            rows = [[f"<b>{escape(u.word)}</b>", fmt_num(u.current_count), fmt_num(u.reference_count)]
                    for u in content.unknown]
            parts.append(table(["word", "current n", "reference n"], rows, numeric=(1, 2)))
        else:
            parts.append('<p class="note">None.</p>')
    parts.append('<h3>Most-shifted examples</h3><p class="note">Rows a domain classifier (reference vs '
                 "current, cross-fitted) finds least like the reference; the shift score is its "
                 "probability that the row is from the current window (0.5: indistinguishable). "
                 f"{escape(content.shifted_note)}</p>")
    parts.append(_examples_table(content.most_shifted, "shift score")
                 if content.most_shifted else "")
    parts.append("<h3>Lowest-confidence examples</h3>")
    parts.append(_examples_table(content.lowest_confidence, ""))
    parts.append("</section>")
    return "".join(parts)


_PERF_LABELS = {
    "reference_accuracy": "reference accuracy",
    "current_accuracy": "realized accuracy (current, labelled rows)",
    "estimated_accuracy": "estimated accuracy (current, from calibrated confidence)",
    "accuracy_drop": "accuracy drop",
    "reference_macro_f1": "reference macro-F1",
    "current_macro_f1": "realized macro-F1 (current)",
    "n_labelled": "labelled current rows",
}


def _perf_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return fmt_num(value, digits=3)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"[{fmt_num(value[0], digits=3)}, {fmt_num(value[1], digits=3)}]"
    return None


def _performance(content: RunContent) -> str:
    perf = content.performance
    if not perf:
        return ""
    if perf.get("_status") not in (None, "ok"):
        note = perf.get("reason") or str(perf.get("_status")).replace("_", " ")
        return ('<section class="card" id="performance"><h2>Estimated vs realized performance</h2>'
                f'<p class="note">Not available for this window: {escape(str(note))}.</p></section>')
    cards = []
    for key, value in perf.items():
        shown = None if key.startswith("_") else _perf_value(value)
        if shown is None:
            continue
        label = _PERF_LABELS.get(key, key.replace("_", " "))
        cards.append(f"<div><b>{escape(shown)}</b><span>{escape(label)}</span></div>")
    method = str(perf.get("_method") or "")
    kind = {"cbpe": "estimated (no labels yet)", "realized": "realized from ground-truth labels"}.get(
        method, method)
    if not cards:
        note = perf.get("reason") or f"status: {perf.get('_status')}"
        return (f'<section class="card" id="performance"><h2>Performance</h2>'
                f'<p class="note">{escape(str(note))}</p></section>')
    extra = f" {escape(str(perf['note']))}." if perf.get("note") else ""
    return ('<section class="card" id="performance"><h2>Estimated vs realized performance</h2>'
            f'<p class="note">Performance signal: {escape(kind)}.{extra}</p>'
            f'<div class="kv">{"".join(cards)}</div></section>')


def run_page(content: RunContent, evidently: str, *, index_href: str, timeline_href: str) -> str:
    """The complete per-window report page. ``evidently`` is the embedded Evidently section."""
    run = content.run
    body = (
        _verdict(content)
        + _distributions(content)
        + _embedding(content)
        + _what_changed(content)
        + _performance(content)
        + '<section class="card" id="evidently"><h2>Evidently: scalar signals</h2>'
        '<p class="note">Evidently 0.7 data-drift report over confidence, entropy, predicted label, '
        "token count, [UNK] rate and truncation.</p>" + evidently + "</section>"
    )
    title = f"Drift report · {run.get('model_name')}"
    subtitle = f"run {run.get('run_id')} · {fmt_ts(run.get('created_at'))}"
    return page(title, body, subtitle=subtitle,
                nav=[("← all reports", index_href), ("timeline", timeline_href)])
