"""HTML of one per-window report, from a prepared :class:`~reports.content.RunContent`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from monitor.drift.base import DriftResult
from monitor.drift.names import Signal
from reports import svg
from reports.content import RunContent
from reports.examples import Example
from reports.page import STATUS_COLORS, badge, fmt_num, fmt_ts, page, table

if TYPE_CHECKING:
    from monitor.drift.suite import DriftReport

__all__ = ["run_page", "run_status"]

_SIGNAL_TITLES: dict[str, str] = {
    Signal.EMBEDDING: "Embeddings", Signal.CLASS_DISTRIBUTION: "Predicted classes",
    Signal.CONFIDENCE: "Confidence", Signal.TOKENIZER: "Tokenizer", Signal.PERFORMANCE: "Performance",
    Signal.BBSD: "Probability vector (BBSD)", Signal.UNKNOWN_INPUT: "Unknown inputs",
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


def _signal_badge(sig: DriftResult, corrected: bool | None) -> str:
    """``drifted`` only when the verdict's correction rejected the signal; a raw flag that did
    not survive is labelled as such; an estimate without a p-value is informational."""
    if sig.status != "ok":
        return badge(sig.status.replace("_", " "),
                     STATUS_COLORS["warn" if sig.status != "error" else "none"])
    if sig.p_value is None:
        return badge("informational", STATUS_COLORS["none"])
    if corrected:
        return badge("drifted", STATUS_COLORS["drifted"])
    if sig.drifted:
        return badge("raw flag only", STATUS_COLORS["warn"])
    return badge("ok", STATUS_COLORS["ok"])


def _verdict(content: RunContent) -> str:
    run, report = content.run, content.report
    signals = report.signals
    drifted = report.drifted
    status = run_status(drifted, [s.status for s in signals])
    verdict = report.verdict
    tests = {str(t.get("signal")): t for t in verdict.get("tests") or [] if isinstance(t, Mapping)}

    def title(name: str) -> str:
        return _SIGNAL_TITLES.get(name, name)

    corrected = [title(n) for n, t in tests.items() if t.get("rejected")]
    raw_only = [s for s in signals if s.drifted and s.p_value is not None
                and not tests.get(s.signal, {}).get("rejected")]
    diag = report.diagnosis()
    kind = diag.title if diag.kind != "none" else None
    headline = {"drifted": "Drift detected" + (f": {kind}" if kind else ""), "ok": "No drift detected",
                "warn": "No drift detected, but signals could not be tested"}[status]
    lines = []
    if drifted:
        lines.append("Drifted after correction: " + ", ".join(corrected) + "." if corrected else
                     "Drift detected.")
        if diag.evidence.get("reasons"):
            lines.append("Evidence: " + "; ".join(str(r) for r in diag.evidence["reasons"]) + ".")
    else:
        lines.append("No signal is drifted after correction.")
    if raw_only:
        lines.append("Raw flag only, not significant after correction: " + ", ".join(
            f"{title(s.signal)} (p {fmt_num(s.p_value)}, adjusted "
            f"{fmt_num(tests.get(s.signal, {}).get('adjusted_p_value'))})"
            for s in raw_only) + ".")
    method = str(verdict.get("method", "holm"))
    method_words = "weighted Holm" if method == "weighted_holm" else method
    rows = []
    for s in signals:
        name = s.signal
        t = tests.get(name, {})
        rows.append([
            f"<b>{escape(title(name))}</b> <span class=mono>{escape(name)}</span>",
            f"<span class=mono>{escape(s.method)}</span>",
            fmt_num(s.statistic), fmt_num(s.p_value), fmt_num(s.threshold),
            "yes" if s.drifted and s.p_value is not None else "no",
            fmt_num(t.get("weight")), fmt_num(t.get("adjusted_p_value")),
            _signal_badge(s, bool(t.get("rejected")) if t else None),
        ])
    headers = ["signal", "method", "statistic", "raw p-value", "threshold", "raw flag", "weight",
               f"adjusted p ({method_words})", "corrected verdict"]
    numeric = (2, 3, 4, 6, 7)
    window = f"{fmt_ts(run.get('window_start'))} → {fmt_ts(run.get('window_end'))}"
    facts = [
        ("model", f"{run.get('model_name')} {run.get('model_version')}"),
        ("window", window), ("reference", str(run.get("reference_name") or "–")),
        ("rows", f"{fmt_num(report.n_current)} current · {fmt_num(report.n_reference)} reference"),
    ]
    if diag.kind != "none":
        facts.append(("diagnosis confidence", f"{diag.confidence:.0%}"))
    fact_html = " · ".join(f"{escape(k)}: <b>{escape(v)}</b>" for k, v in facts)
    diag_attr = f' data-diagnosis="{escape(diag.kind)}"'
    return (
        f'<div id="verdict" class="verdict {status}" data-status="{status}"{diag_attr}>'
        f"<h2>{escape(headline)}</h2>"
        + "".join(f"<p>{escape(line)}</p>" for line in lines) + f"<p>{fact_html}</p></div>"
        '<section class="card" id="signals"><h2>Signals</h2>'
        '<p class="note"><b>Raw flag</b>: the signal alone, p &lt; its threshold. '
        f"<b>Corrected verdict</b>: rejected by {escape(method_words)} at α = "
        f"{escape(fmt_num(verdict.get('alpha', 0.01)))} over every signal with a p-value, so the "
        "window's false-alarm rate stays at α; the window is drifted exactly when some signal is "
        "drifted after correction. Estimates without a p-value (CBPE) are informational and never "
        "decide.</p>"
        + table(headers, rows, numeric=numeric)
        + "</section>" + _per_class(report)
    )


def _details(report: DriftReport, signal: Signal) -> Mapping[str, Any]:
    result = report.signal(signal)
    return result.details if result is not None else {}


def _per_class(report: DriftReport) -> str:
    """Per-class MMD (did each class move?) and the BBSE prior estimate (did the mix move?)."""
    per = _details(report, Signal.EMBEDDING).get("per_class")
    bbse = _details(report, Signal.CLASS_DISTRIBUTION).get("bbse")
    if not per and not bbse:
        return ""
    parts = ['<section class="card" id="per-class"><h2>Classes: did they move, or did the mix?</h2>'
             '<p class="note">A covariate shift moves classes in embedding space (per-class MMD '
             "significant); a label-prior shift keeps each class in place and changes only the mix "
             "(black-box shift estimation of the true-label prior, Lipton et al. 2018).</p>"]
    if isinstance(per, Mapping) and per:
        k = sum(1 for v in per.values() if isinstance(v, Mapping) and v.get("p_value") is not None)
        rows = [[escape(str(c)), fmt_num(v.get("n_reference")), fmt_num(v.get("n_current")),
                 fmt_num(v.get("mmd2")), fmt_num(v.get("p_value")),
                 ("moved" if v.get("p_value") is not None and float(v["p_value"]) * max(k, 1) < 0.01
                  else str(v.get("status", "ok")).replace("_", " ") if v.get("p_value") is None
                  else "in place")]
                for c, v in per.items() if isinstance(v, Mapping)]
        parts.append("<h3>Per-class MMD (by predicted class)</h3>"
                     + table(["class", "reference rows", "current rows", "MMD²", "p-value",
                              f"moved? (Bonferroni over {k})"], rows, numeric=(1, 2, 3, 4)))
    if isinstance(bbse, Mapping) and bbse.get("classes"):
        lo = dict(zip(bbse.get("interval_classes") or [], bbse.get("estimated_prior_low") or [],
                      strict=False))
        hi = dict(zip(bbse.get("interval_classes") or [], bbse.get("estimated_prior_high") or [],
                      strict=False))
        rows = [[escape(str(c)), fmt_num(r), fmt_num(e),
                 (f"{fmt_num(lo[c])} – {fmt_num(hi[c])}" if c in lo and c in hi else "–")]
                for c, r, e in zip(bbse["classes"], bbse.get("reference_prior") or [],
                                   bbse.get("estimated_prior") or [], strict=False)]
        parts.append("<h3>Label prior (BBSE estimate)</h3>"
                     + table(["class", "reference prior", "estimated current prior", "95 % interval"],
                             rows, numeric=(1, 2)))
    parts.append("</section>")
    return "".join(parts)


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
                     '<p class="note">Ranked by z-score of the weighted log-odds with an informative '
                     "Dirichlet prior (rare words are shrunk towards no change); <b>significant</b> "
                     "marks z above the one-sided 5 % level after Bonferroni over the words tested. "
                     "Rates per 1,000 words.</p>")
        if content.tokens:
            rows = [[f"<b>{escape(t.token)}</b>", fmt_num(t.z, digits=3),
                     "significant" if t.significant else "–",
                     fmt_num(t.current_rate, digits=3), fmt_num(t.reference_rate, digits=3),
                     fmt_num(t.current_count), fmt_num(t.reference_count)] for t in content.tokens]
            parts.append(table(["word", "z", "significant?", "current /1k", "reference /1k",
                                "current n", "reference n"], rows, numeric=(1, 3, 4, 5, 6)))
            if not any(t.significant for t in content.tokens):
                parts.append('<p class="note">No single word is significant after correction; '
                             "the words above are the most over-represented by z-score. A shift "
                             "can move meaning without moving any one word's frequency.</p>")
        else:
            parts.append('<p class="note">No word of the current window (seen at least 3 times) is '
                         "more frequent than in the reference.</p>")
        how = ("the model version's tokenizer maps them to [UNK]" if content.unknown_method == "tokenizer"
               else "no tokenizer available: words never seen in the reference window")
        parts.append(f'<h3>New [UNK]-producing words</h3><p class="note">{escape(how)}.</p>')
        if content.unknown:
            rows = [[f"<b>{escape(u.word)}</b>", fmt_num(u.current_count), fmt_num(u.reference_count)]
                    for u in content.unknown]
            parts.append(table(["word", "current n", "reference n"], rows, numeric=(1, 2)))
        else:
            parts.append('<p class="note">No word or symbol of the current window maps to [UNK] '
                         "(emoji and other symbols are checked one by one).</p>")
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
        + '<section class="card" id="evidently"><h2>Evidently\'s own view: per-column data drift '
        "(its tests, its thresholds)</h2>"
        '<p class="note">Evidently 0.7\'s <code>DataDriftPreset</code> over confidence, entropy, '
        "predicted label, token count, [UNK] rate and truncation, with Evidently's defaults: per "
        "column, a K–S test (numerical) or chi-square / Z-test (categorical) at p &lt; 0.05 up to "
        "1,000 rows, Wasserstein / Jensen–Shannon distance &gt; 0.1 above; its \u201cDataset "
        "Drift\u201d line means at least half of these columns drifted. It is a second opinion, "
        "uncorrected for testing several columns and blind to embeddings, so it can disagree with "
        "the verdict at the top of this page, which is the one this report states.</p>"
        + evidently + "</section>"
    )
    title = f"Drift report · {run.get('model_name')}"
    subtitle = f"run {run.get('run_id')} · {fmt_ts(run.get('created_at'))}"
    return page(title, body, subtitle=subtitle,
                nav=[("← all reports", index_href), ("timeline", timeline_href)])
