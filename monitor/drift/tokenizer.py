"""Tokenizer drift: UNK rate, truncation rate, token-count distribution, odd characters.

Sub-tests (each run when its columns are present on enough rows):

* ``unk_rate`` — per-row UNK share ``n_unk / n_tokens``, exact permutation
  test of the mean difference (rows are the independent units; pooling
  tokens would overstate the evidence when UNKs cluster in a few texts);
* ``truncation_rate`` — rows truncated, Fisher's exact two-proportion test;
* ``n_tokens`` — KS two-sample; token counts are integers with many ties, so
  the p-value is an exact permutation over tie groups, never the
  asymptotic formula;
* ``chars_per_token`` — KS on ``n_chars / n_tokens`` (other scripts and
  languages tokenise into more, shorter pieces);
* ``length_cap`` — a pile-up of rows at one exact character length (an
  upstream truncation to N characters): the most common ``n_chars`` of the
  *pooled* windows is chosen and the current share at that length is compared
  with the reference's (Fisher's exact test). The value is a function of the
  pooled rows only, and Fisher's test conditions on the pooled count, so under
  no shift the p-value stays exact;
* ``replacement_char`` / ``non_ascii`` / ``markup`` — rows containing U+FFFD /
  any non-ASCII character / an HTML tag or entity, Fisher's exact test (needs
  ``text``).

:data:`FORMAT_TESTS` names the sub-tests that point at an input-format or
upstream change rather than at new content (used by the diagnosis).

The signal's p-value is Bonferroni over the sub-tests that ran (valid under
any dependence); every sub-result is in details.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import bonferroni_min, fisher_two_sided, ks_test, mean_diff_test

__all__ = ["FORMAT_TESTS", "TokenizerDrift"]

#: Sub-tests whose change points at preprocessing / encoding, not at new content
#: (``unk_rows``: the fleet's share of rows with an [UNK], monitor.lake.signals).
FORMAT_TESTS = ("unk_rate", "truncation_rate", "chars_per_token", "length_cap", "replacement_char",
                "non_ascii", "markup", "unk_rows")
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>|&(?:[a-zA-Z]{2,8}|#\d{2,5});")

_COLUMNS = ("n_tokens", "n_unk", "truncated", "n_chars", "text")


def _valid(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    v = a[np.isfinite(a)]
    return v if v.size else None


def _unk_share(f: DriftFrame) -> np.ndarray | None:
    if f.n_unk is None or f.n_tokens is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _valid(f.n_unk / np.where(f.n_tokens > 0, f.n_tokens, np.nan))


def _chars_per_token(f: DriftFrame) -> np.ndarray | None:
    if f.n_chars is None or f.n_tokens is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _valid(f.n_chars / np.where(f.n_tokens > 0, f.n_tokens, np.nan))


def _text_flags(f: DriftFrame, pred: Callable[[str], bool]) -> np.ndarray | None:
    if f.text is None:
        return None
    vals = [pred(t) for t in f.text.tolist() if t is not None]
    return np.asarray(vals, dtype=np.float64) if vals else None


def _has_replacement(t: str) -> bool:
    return "\ufffd" in t


def _has_non_ascii(t: str) -> bool:
    return not t.isascii()


def _has_markup(t: str) -> bool:
    return _MARKUP.search(t) is not None


class TokenizerDrift(DriftCalculator):
    """Tokenizer-statistics drift; Bonferroni-combined sub-tests."""

    signal = "tokenizer"
    method = "bonferroni"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, n_permutations: int = 1000,
                 seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        self.n_permutations = n_permutations
        self.seed = seed
        self._ref: DriftFrame | None = None

    def _count(self, frame: DriftFrame) -> int:
        return frame.n if any(getattr(frame, c) is not None for c in _COLUMNS) else 0

    def _fit(self, reference: DriftFrame) -> None:
        self._ref = reference

    def _compute(self, current: DriftFrame) -> DriftResult:
        assert self._ref is not None
        ref, cur = self._ref, current
        rng = np.random.default_rng(self.seed)
        sub: dict[str, dict[str, Any]] = {}

        def enough(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return a is not None and b is not None and min(a.size, b.size) >= self.min_rows

        a, b = _unk_share(ref), _unk_share(cur)
        if enough(a, b):
            assert a is not None and b is not None
            diff, p = mean_diff_test(a, b, rng=rng, n_permutations=self.n_permutations)
            sub["unk_rate"] = {"test": "permutation_mean", "statistic": diff, "p_value": p,
                               "reference": float(a.mean()), "current": float(b.mean()),
                               "reference_rows_with_unk": float((a > 0).mean()),
                               "current_rows_with_unk": float((b > 0).mean())}
        a, b = _valid(ref.truncated), _valid(cur.truncated)
        if enough(a, b):
            assert a is not None and b is not None
            ka, kb = int(a.sum()), int(b.sum())
            sub["truncation_rate"] = {"test": "fisher_exact", "statistic": kb / b.size - ka / a.size,
                                      "p_value": fisher_two_sided(ka, a.size, kb, b.size),
                                      "reference": ka / a.size, "current": kb / b.size}
        for name, get in (("n_tokens", lambda f: _valid(f.n_tokens)),
                          ("chars_per_token", _chars_per_token)):
            a, b = get(ref), get(cur)
            if enough(a, b):
                assert a is not None and b is not None
                stat, p, test = ks_test(a, b, rng=rng, n_permutations=self.n_permutations)
                sub[name] = {"test": test, "statistic": stat, "p_value": p,
                             "reference_mean": float(a.mean()), "current_mean": float(b.mean())}
        a, b = _valid(ref.n_chars), _valid(cur.n_chars)
        if enough(a, b):
            assert a is not None and b is not None
            values, counts = np.unique(np.concatenate([a, b]), return_counts=True)
            cap = float(values[np.argmax(counts)])
            ka, kb = int((a == cap).sum()), int((b == cap).sum())
            sub["length_cap"] = {"test": "fisher_exact", "length": cap,
                                 "statistic": kb / b.size - ka / a.size,
                                 "p_value": fisher_two_sided(ka, a.size, kb, b.size),
                                 "reference": ka / a.size, "current": kb / b.size}
        for name, flag in (("replacement_char", _has_replacement), ("non_ascii", _has_non_ascii),
                           ("markup", _has_markup)):
            a, b = _text_flags(ref, flag), _text_flags(cur, flag)
            if enough(a, b):
                assert a is not None and b is not None
                ka, kb = int(a.sum()), int(b.sum())
                sub[name] = {"test": "fisher_exact", "statistic": kb / b.size - ka / a.size,
                             "p_value": fisher_two_sided(ka, a.size, kb, b.size),
                             "reference": ka / a.size, "current": kb / b.size}
        if not sub:
            return self.result(statistic=None, p_value=None, drifted=False, n_current=cur.n,
                               status="insufficient_data",
                               details={"min_rows": self.min_rows,
                                        "reason": "no tokenizer column present on "
                                                  f"{self.min_rows}+ rows of both windows"})
        p = bonferroni_min([s["p_value"] for s in sub.values()])
        lead = min(sub, key=lambda k: sub[k]["p_value"])
        return self.result(statistic=float(sub[lead]["statistic"]), p_value=p,
                           drifted=p < self.threshold, n_current=cur.n,
                           details={"combination": "bonferroni", "statistic_of": lead, "tests": sub})
