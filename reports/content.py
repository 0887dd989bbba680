"""Everything one per-window report shows, prepared from the two windows (pure).

:func:`prepare_run` turns a drift run (its row and its
:class:`~monitor.drift.suite.DriftReport`) and the
reference / current Arrow tables into a :class:`RunContent`; the HTML layer
only formats it. Heavy or optional pieces come in as functions, so this
module stays free of I/O: ``shift_fn`` (domain-classifier scores of the
current rows) and ``unknown_fn`` (the model version's tokenizer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from monitor.drift.names import Signal
from reports.distributions import ClassShares, Histogram, class_shares, histogram
from reports.examples import Example, pick_examples
from reports.projection import Projection, project, reduce_pooled
from reports.tokens import TokenShift, UnknownWord, count_words, over_represented, unknown_words
from reports.window import embeddings, scalar_columns, strings

if TYPE_CHECKING:
    from monitor.drift.suite import DriftReport

__all__ = ["RunContent", "ShiftFn", "UnknownFn", "prepare_run"]

ShiftFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
UnknownFn = Callable[[Sequence[str]], Sequence[bool]]


@dataclass(frozen=True, slots=True, eq=False)
class RunContent:
    """Data of one per-window report (no HTML)."""

    run: Mapping[str, Any]
    report: DriftReport
    classes: ClassShares
    histograms: dict[str, Histogram]
    projection: Projection | None
    projection_note: str
    tokens: list[TokenShift]
    unknown: list[UnknownWord]
    unknown_method: str
    text_logged: bool
    most_shifted: list[Example]
    shifted_note: str
    lowest_confidence: list[Example]
    performance: dict[str, Any] = field(default_factory=dict)
    scalars_reference: dict[str, np.ndarray] = field(default_factory=dict)
    scalars_current: dict[str, np.ndarray] = field(default_factory=dict)


#: histogram of each scalar column: (value range or None for the pooled range, integer bins)
_HISTOGRAMS: dict[str, tuple[tuple[float, float] | None, bool]] = {
    "confidence": ((0.0, 1.0), False), "entropy": (None, False), "n_tokens": (None, True),
    "unk_rate": (None, False),
}


def _performance(report: DriftReport) -> dict[str, Any]:
    sig = report.signal(Signal.PERFORMANCE)
    if sig is None:
        return {}
    details = dict(sig.details)
    details.setdefault("_status", sig.status)
    details.setdefault("_statistic", sig.statistic)
    details.setdefault("_method", sig.method)
    return details


def prepare_run(
    run: Mapping[str, Any],
    report: DriftReport,
    reference: pa.Table,
    current: pa.Table,
    *,
    shift_fn: ShiftFn | None = None,
    unknown_fn: UnknownFn | None = None,
    shift_cap: int = 2000,
    shift_dims: int = 32,
    max_points: int = 1500,
    k_examples: int = 10,
    seed: int = 0,
) -> RunContent:
    """Assemble the report data of one drift run."""
    ref_s, cur_s = scalar_columns(reference), scalar_columns(current)
    classes = class_shares(list(ref_s.get("predicted_label", [])), list(cur_s.get("predicted_label", [])))
    hists = {name: histogram(ref_s[name], cur_s[name], value_range=rng, integer=integer)
             for name, (rng, integer) in _HISTOGRAMS.items() if name in ref_s and name in cur_s
             and ref_s[name].size and cur_s[name].size}

    ref_emb, cur_emb = embeddings(reference), embeddings(current)
    projection: Projection | None = None
    projection_note = ""
    if ref_emb is None or cur_emb is None:
        projection_note = "No embeddings were logged for one of the windows."
    elif ref_emb.shape[1] != cur_emb.shape[1]:
        projection_note = (f"Embedding widths differ ({ref_emb.shape[1]} vs {cur_emb.shape[1]}): "
                           "the windows come from different encoders.")
    elif ref_emb.shape[0] < 2:
        projection_note = "Too few reference rows for a projection."
    else:
        projection = project(ref_emb, cur_emb, max_points=max_points, seed=seed)

    ref_text, cur_text = strings(reference, "text"), strings(current, "text")
    text_logged = any(t for t in cur_text)
    tokens: list[TokenShift] = []
    unknown: list[UnknownWord] = []
    unknown_method = "none"
    if text_logged:
        ref_counts, cur_counts = count_words(ref_text), count_words(cur_text)
        tokens = over_represented(ref_counts, cur_counts, min_z=0.0)
        unknown, unknown_method = unknown_words(ref_counts, cur_counts, is_unknown=unknown_fn)

    n_cur = current.num_rows
    ids = strings(current, "event_id")
    hashes = strings(current, "text_sha256")
    labels = [str(v) for v in cur_s.get("predicted_label", np.asarray([""] * n_cur, dtype=object))]
    conf = cur_s.get("confidence", np.zeros(n_cur))
    pick = partial(pick_examples, event_ids=ids, texts=cur_text, hashes=hashes, labels=labels,
                   confidence=conf, k=k_examples)
    lowest = pick(np.argsort(conf, kind="stable"), scores=conf) if n_cur else []

    shifted: list[Example] = []
    shifted_note = ""
    if shift_fn is None:
        shifted_note = "The domain-classifier scorer is not available."
    elif projection is None or ref_emb is None or cur_emb is None:
        shifted_note = projection_note or "No embeddings."
    else:
        rng = np.random.default_rng(seed)
        ref_idx = (np.arange(ref_emb.shape[0]) if ref_emb.shape[0] <= shift_cap
                   else np.sort(rng.choice(ref_emb.shape[0], shift_cap, replace=False)))
        cur_idx = (np.arange(n_cur) if n_cur <= shift_cap
                   else np.sort(rng.choice(n_cur, shift_cap, replace=False)))
        ref_low, cur_low = reduce_pooled(ref_emb[ref_idx], cur_emb[cur_idx], shift_dims)
        scores = np.asarray(shift_fn(ref_low, cur_low), dtype=np.float64)
        full = np.full(n_cur, np.nan)
        full[cur_idx] = scores
        order = cur_idx[np.argsort(-scores, kind="stable")]
        shifted = pick(order, scores=full)
        if n_cur > shift_cap:
            shifted_note = f"Scored on a random sample of {shift_cap:,} of {n_cur:,} current rows."

    return RunContent(
        run=run, report=report, classes=classes, histograms=hists, projection=projection,
        projection_note=projection_note, tokens=tokens, unknown=unknown,
        unknown_method=unknown_method, text_logged=text_logged, most_shifted=shifted,
        shifted_note=shifted_note, lowest_confidence=lowest, performance=_performance(report),
        scalars_reference=ref_s, scalars_current=cur_s,
    )
