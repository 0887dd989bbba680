"""What changed in the words: over-represented tokens and new ``[UNK]``-producing words.

Pure functions over lists of texts. Over-representation is the weighted
log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn
2008, "Fightin' Words"): the prior is the pooled word distribution of both
windows scaled to ``prior_strength`` pseudo-counts, which shrinks rare words
towards "no difference" so that a word seen twice does not top the list.
The z-score ``delta / sqrt(var)`` ranks words; a word is marked significant when its z
passes the one-sided 5 % level Bonferroni-corrected over the words tested.

Words are runs of letters and digits; every other non-ASCII symbol (emoji, ©, ™, …) counts as
a word of its own, so symbols that the tokenizer maps to ``[UNK]`` are listed too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["TokenShift", "UnknownWord", "count_words", "over_represented", "unknown_words", "words"]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s\x00-\x7f]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits, inner apostrophes kept; each
    non-ASCII symbol such as an emoji is a token of its own)."""
    return _WORD.findall(text.lower())


def count_words(texts: Iterable[str | None]) -> Counter[str]:
    """Word counts over ``texts`` (``None`` entries are skipped)."""
    counts: Counter[str] = Counter()
    for text in texts:
        if text:
            counts.update(words(text))
    return counts


@dataclass(frozen=True, slots=True)
class TokenShift:
    """One word's change: weighted log-odds z-score and its counts on each side."""

    token: str
    z: float
    log_odds: float
    current_count: int
    reference_count: int
    current_rate: float  # per 1,000 words
    reference_rate: float
    significant: bool = False  # z above the Bonferroni-corrected one-sided 5 % level


def over_represented(
    reference: Counter[str],
    current: Counter[str],
    *,
    prior_strength: float = 500.0,
    min_count: int = 3,
    top: int = 20,
    min_z: float = 1.96,
) -> list[TokenShift]:
    """Words much more frequent in ``current`` than in ``reference``, strongest first.

    ``prior_strength`` is the total pseudo-count of the Dirichlet prior
    (spread over words by their pooled frequency); words seen fewer than
    ``min_count`` times in the current window and with ``z < min_z`` are left out.
    ``significant`` marks z above ``Φ⁻¹(1 − 0.05 / m)``, ``m`` the words tested.
    """
    from statistics import NormalDist

    n_ref = sum(reference.values())
    n_cur = sum(current.values())
    if n_ref == 0 or n_cur == 0:
        return []
    pooled_total = n_ref + n_cur
    a0 = float(prior_strength)
    out: list[TokenShift] = []
    tested = sum(1 for y in current.values() if y >= min_count)
    z_crit = NormalDist().inv_cdf(1.0 - 0.05 / max(tested, 1))
    for token, y_cur in current.items():
        if y_cur < min_count:
            continue
        y_ref = reference.get(token, 0)
        a = a0 * (y_cur + y_ref) / pooled_total
        lo_cur = math.log((y_cur + a) / (n_cur + a0 - y_cur - a))
        lo_ref = math.log((y_ref + a) / (n_ref + a0 - y_ref - a))
        delta = lo_cur - lo_ref
        z = delta / math.sqrt(1.0 / (y_cur + a) + 1.0 / (y_ref + a))
        if z < min_z or z <= 0:
            continue
        out.append(TokenShift(token, z, delta, y_cur, y_ref, 1000.0 * y_cur / n_cur,
                              1000.0 * y_ref / n_ref, significant=z > z_crit))
    out.sort(key=lambda t: (-t.z, t.token))
    return out[:top]


@dataclass(frozen=True, slots=True)
class UnknownWord:
    """A word of the current window that the tokenizer cannot represent (or never seen before)."""

    word: str
    current_count: int
    reference_count: int


def unknown_words(
    reference: Counter[str],
    current: Counter[str],
    *,
    is_unknown: Callable[[Sequence[str]], Sequence[bool]] | None = None,
    max_words: int = 5000,
    top: int = 20,
) -> tuple[list[UnknownWord], str]:
    """Words of ``current`` that produce ``[UNK]``, most frequent first, and the method used.

    ``is_unknown`` maps a batch of words to flags (the model version's
    tokenizer). Without it, the word-level fallback lists words never seen in
    the reference window. Only the ``max_words`` most frequent current words
    are checked.
    """
    candidates = [w for w, _ in current.most_common(max_words)]
    if is_unknown is not None:
        flags = is_unknown(candidates)
        picked = [w for w, f in zip(candidates, flags, strict=True) if f]
        method = "tokenizer"
    else:
        picked = [w for w in candidates if reference.get(w, 0) == 0 and current[w] >= 2]
        method = "new-word"
    items = [UnknownWord(w, current[w], reference.get(w, 0)) for w in picked]
    items.sort(key=lambda u: (-u.current_count, u.word))
    return items[:top], method
