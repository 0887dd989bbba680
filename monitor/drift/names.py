"""The drift signals' names, defined once (DESIGN §4).

:class:`Signal` is what every other place spells a signal with: the suite's defaults, weights
and methods, the policy's ``{signal: NAME}`` validation, the reports' ordering and titles, the
CLI help. A :class:`Signal` is a ``str``, so it compares and hashes as its name (``Signal.EMBEDDING ==
"embedding"``); the collections other modules keep (:data:`SIGNALS`, the suite's tables) hold
the plain names, so YAML, JSON, Arrow and SQL see ordinary strings.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SIGNALS", "Signal", "signal_names"]


class Signal(StrEnum):
    """One drift signal (its calculators live in the module of the same name)."""

    #: sentence embeddings: MMD² (default), domain classifier, centroid, RFF/Hotelling
    EMBEDDING = "embedding"
    #: black-box shift detection: per-class KS on the probability vector, Bonferroni
    BBSD = "bbsd"
    #: predicted-label counts: chi-square (Jensen–Shannon, PSI in the details)
    CLASS_DISTRIBUTION = "class_distribution"
    #: max class probability: KS (Wasserstein, mean drop, low-confidence share in the details)
    CONFIDENCE = "confidence"
    #: inputs far from every reference class, with prediction entropy
    UNKNOWN_INPUT = "unknown_input"
    #: [UNK] rate, truncation, token counts and format sub-tests
    TOKENIZER = "tokenizer"
    #: realized accuracy / macro-F1 with labels, CBPE-style estimate without
    PERFORMANCE = "performance"


#: Every signal's name (plain ``str``), in the order the suite runs them and the reports show them.
SIGNALS: tuple[str, ...] = tuple(s.value for s in Signal)


def signal_names(sep: str = ", ") -> str:
    """The signal names joined by ``sep`` (for help texts and error messages)."""
    return sep.join(SIGNALS)
