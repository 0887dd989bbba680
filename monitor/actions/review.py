"""``review``: queue the window's most informative rows for labelling.

Three criteria share the budget ``n`` (in the order given): ``low_confidence`` (smallest max
probability), ``high_entropy`` (largest normalised entropy of ``probs``) and ``most_shifted``
(highest cross-fitted domain-classifier score against the reference,
:func:`monitor.drift.shift.shift_scores`). Rows that already carry a label, or were picked by
an earlier criterion, are passed over. Rows go to ``review_queue`` with ``INSERT OR IGNORE``
(the event id is the key), so running the action twice on a window queues nothing new.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams
from monitor.errors import ActionError

__all__ = ["ReviewAction", "ReviewParams", "select_for_review"]

Criterion = Literal["low_confidence", "high_entropy", "most_shifted"]


class ReviewParams(ActionParams):
    """Parameters of :class:`ReviewAction`."""

    n: int = Field(60, ge=1, le=100_000, description="rows to queue per window")
    criteria: tuple[Criterion, ...] = ("low_confidence", "high_entropy", "most_shifted")
    seed: int = 0


def _matrix(col: pa.ChunkedArray) -> np.ndarray | None:
    if col.null_count:
        return None
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if lengths.size == 0 or (lengths != lengths[0]).any():
        return None
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
    out: np.ndarray = flat.reshape(len(col), int(lengths[0]))
    return out


def _scores(criterion: Criterion, window: pa.Table, reference: pa.Table | None,
            seed: int) -> np.ndarray | None:
    """Per-row score (higher = more worth labelling), or None when the data lacks it."""
    if criterion == "low_confidence":
        conf: np.ndarray = window["confidence"].to_numpy(zero_copy_only=False).astype(np.float64)
        return 1.0 - conf
    if criterion == "high_entropy":
        probs = _matrix(window["probs"]) if "probs" in window.column_names else None
        if probs is None or probs.shape[1] < 2:
            return None
        p = np.clip(probs, 1e-12, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
        return np.asarray(-(p * np.log(p)).sum(axis=1) / np.log(p.shape[1]))
    if reference is None or "embedding" not in window.column_names:
        return None
    cur, ref = _matrix(window["embedding"]), _matrix(reference["embedding"])
    if cur is None or ref is None or cur.shape[1] != ref.shape[1] or len(ref) < 10 or len(cur) < 10:
        return None
    from monitor.drift.shift import shift_scores

    return np.asarray(shift_scores(ref, cur, seed=seed), dtype=np.float64)


def select_for_review(window: pa.Table, reference: pa.Table | None, *, n: int,
                      criteria: tuple[Criterion, ...] = ("low_confidence", "high_entropy", "most_shifted"),
                      seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Pick up to ``n`` unlabelled rows of ``window``: ``([{event_id, reason, score}], skipped)``.

    ``skipped`` names the criteria the data could not support (no probs, no embeddings) and why;
    their share of the budget goes to the others.
    """
    labels = window["label"].to_pylist() if "label" in window.column_names else [None] * window.num_rows
    ids = window["event_id"].to_pylist()
    usable = np.array([lab is None for lab in labels], dtype=bool)
    scored: list[tuple[Criterion, np.ndarray]] = []
    skipped: dict[str, str] = {}
    for c in criteria:
        s = _scores(c, window, reference, seed)
        if s is None:
            skipped[c] = "the window lacks the data for it (probs / embeddings / reference)"
        else:
            scored.append((c, s))
    picked: list[dict[str, Any]] = []
    taken = ~usable
    for i, (c, s) in enumerate(scored):
        quota = (n - len(picked)) // (len(scored) - i)
        order = np.argsort(-s, kind="stable")
        for j in order:
            if quota <= 0:
                break
            if taken[j]:
                continue
            taken[j] = True
            picked.append({"event_id": ids[j], "reason": c, "score": float(s[j])})
            quota -= 1
    return picked, skipped


class ReviewAction(Action):
    """Queue the lowest-confidence / highest-entropy / most-shifted rows of the window."""

    kind: ClassVar[str] = "review"
    Params = ReviewParams
    params: ReviewParams

    def describe(self, context: ActionContext) -> str:
        return (f"queue up to {self.params.n} rows of run {context.alert.get('run_id')} for review "
                f"({', '.join(self.params.criteria)})")

    def _run(self, context: ActionContext) -> ActionOutcome:
        if context.window is None:
            raise ActionError("review: the decision has no window to pick rows from")
        window = context.window()
        if window.num_rows == 0:
            return ActionOutcome("skipped", detail={"reason": "empty window"})
        reference = context.reference() if context.reference is not None else None
        picked, skipped = select_for_review(window, reference, n=self.params.n,
                                            criteria=self.params.criteria, seed=self.params.seed)
        model_name = str(context.alert.get("model_name"))
        run_id = context.alert.get("run_id")
        table = pa.table({
            "event_id": pa.array([p["event_id"] for p in picked], pa.string()),
            "model_name": pa.array([model_name] * len(picked), pa.string()),
            "run_id": pa.array([run_id] * len(picked), pa.string()),
            "reason": pa.array([p["reason"] for p in picked], pa.string()),
            "score": pa.array([p["score"] for p in picked], pa.float64()),
        })
        store = context.store
        before = int(store.execute("ops_review_count")[0][0])
        with store.transaction(), store.registered("_review", table):
            store.execute("ops_review_insert")
        after = int(store.execute("ops_review_count")[0][0])
        by_reason: dict[str, int] = {}
        for p in picked:
            by_reason[p["reason"]] = by_reason.get(p["reason"], 0) + 1
        return ActionOutcome("ok", detail={"selected": len(picked), "queued": after - before,
                                           "by_reason": by_reason, "skipped_criteria": skipped})
