"""Rows worth reading: the most-shifted and the lowest-confidence examples (pure).

The text is shown only when the rows carry it (text logging enabled);
otherwise the first 12 hex digits of ``text_sha256`` stand in for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Example", "pick_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    """One row of the current window, as shown in a report."""

    event_id: str
    shown: str
    is_text: bool
    predicted_label: str
    confidence: float
    score: float | None = None


def _shown(text: str | None, sha: str | None, max_chars: int) -> tuple[str, bool]:
    if text:
        return (text if len(text) <= max_chars else text[: max_chars - 1] + "…"), True
    if sha:
        return f"sha256:{sha[:12]}", False
    return "(no text logged)", False


def pick_examples(
    order: np.ndarray,
    *,
    event_ids: Sequence[str | None],
    texts: Sequence[str | None],
    hashes: Sequence[str | None],
    labels: Sequence[str],
    confidence: np.ndarray,
    scores: np.ndarray | None = None,
    k: int = 10,
    max_chars: int = 280,
) -> list[Example]:
    """The first ``k`` rows of ``order`` (row indices) as :class:`Example` items;
    ``scores`` (one per row of the window) gives each item's score."""
    out: list[Example] = []
    for i in order[:k]:
        row = int(i)
        shown, is_text = _shown(texts[row], hashes[row], max_chars)
        score = None if scores is None else float(scores[row])
        out.append(Example(event_ids[row] or "", shown, is_text, str(labels[row]),
                           float(confidence[row]), score))
    return out
