"""DriftSuite: run the chosen signals on a window and give one corrected verdict.

    suite = DriftSuite(["embedding", "confidence"], alpha=0.01).fit(reference_frame)
    report = suite.compute(current_frame)
    report.drifted, report.to_dict()

Per-signal configuration goes in ``options``: ``{"embedding": {"method":
"domain_classifier", "threshold": 0.001, "max_rows": 1000}}``; every other
key is passed to the signal's calculator. A signal's own ``drifted`` uses its
own threshold (default: the suite's ``alpha``): that is the **raw** flag. The
overall verdict applies *weighted* Holm at ``alpha`` to every signal that
produced a p-value, with the prespecified :data:`DEFAULT_WEIGHTS` (the two
omnibus tests, embedding MMD and BBSD, weigh 3; each targeted test 1; see
docs/detection.md), so the family-wise false-alarm rate stays at ``alpha``
however many signals run and whatever their dependence. A signal rejected by
that procedure is **corrected**-drifted; the verdict is drifted exactly when
some signal is. ``weights`` overrides the weights (``{"confidence": 2}``);
equal weights give plain Holm. Estimates without a p-value (CBPE) are reported
as informational and never decide the verdict.

A capped embedding method (MMD and the others test at most ``max_rows`` per
side) is replaced, on a window with more embedded rows than ``max_rows``, by
the all-rows test :class:`monitor.drift.rff.RFFHotellingDrift` (details say
``instead_of``), so large windows keep their power; the embedding option
``all_rows_past_max: false`` keeps the capped method.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.names import SIGNALS, Signal
from monitor.drift.stats import weighted_holm
from monitor.errors import CalculatorError, ConfigError

if TYPE_CHECKING:
    from monitor.drift.diagnosis import Diagnosis

__all__ = ["DEFAULT_SIGNALS", "DEFAULT_WEIGHTS", "METHODS", "DriftReport", "DriftSuite",
           "make_calculator"]

log = logging.getLogger(__name__)

#: The signals a suite runs when none are chosen: all of them (:data:`monitor.drift.names.SIGNALS`).
DEFAULT_SIGNALS: tuple[str, ...] = SIGNALS

#: Prespecified weighted-Holm weights (fixed before any benchmark; docs/detection.md):
#: the omnibus tests of inputs and outputs weigh 3, each targeted test 1.
DEFAULT_WEIGHTS: dict[str, float] = {s: 3.0 if s in (Signal.EMBEDDING, Signal.BBSD) else 1.0
                                     for s in SIGNALS}

#: signal -> method -> "module:Class" (imported on use).
METHODS: dict[str, dict[str, str]] = {
    Signal.EMBEDDING.value: {"mmd": "monitor.drift.embedding:MMDDrift",
                             "domain_classifier": "monitor.drift.embedding:DomainClassifierDrift",
                             "centroid": "monitor.drift.embedding:CentroidDrift",
                             "rff_hotelling": "monitor.drift.rff:RFFHotellingDrift"},
    Signal.BBSD.value: {"ks_bonferroni": "monitor.drift.bbsd:BBSDDrift"},
    Signal.CLASS_DISTRIBUTION.value: {"chi2": "monitor.drift.class_distribution:ClassDistributionDrift"},
    Signal.CONFIDENCE.value: {"ks": "monitor.drift.confidence:ConfidenceDrift"},
    Signal.UNKNOWN_INPUT.value: {"entropy_distance": "monitor.drift.unknown:UnknownInputDrift"},
    Signal.TOKENIZER.value: {"bonferroni": "monitor.drift.tokenizer:TokenizerDrift"},
    Signal.PERFORMANCE.value: {"realized": "monitor.drift.performance:PerformanceDrift"},
}


def make_calculator(signal: str, *, alpha: float, seed: int,
                    options: Mapping[str, Any] | None = None) -> DriftCalculator:
    """Build one signal's calculator from its options (``method`` picks the alternative)."""
    import importlib
    import inspect

    if signal not in METHODS:
        raise ConfigError(f"unknown drift signal '{signal}' (choose from {', '.join(METHODS)})")
    opts = dict(options or {})
    methods = METHODS[signal]
    method = str(opts.pop("method", next(iter(methods))))
    if method == "cbpe" and signal == "performance":
        method = "realized"  # one calculator does both; it picks by label availability
    if method not in methods:
        raise ConfigError(f"signal '{signal}': unknown method '{method}' "
                          f"(choose from {', '.join(methods)})")
    module, _, cls_name = methods[method].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    opts.setdefault("threshold", alpha)
    accepted = _accepted_kwargs(cls, inspect)
    if "seed" in accepted:
        opts.setdefault("seed", seed)
    unknown = sorted(set(opts) - accepted) if accepted and "kwargs" not in accepted else []
    if unknown:
        raise ConfigError(f"signal '{signal}' ({method}): unknown option(s) {', '.join(unknown)}")
    try:
        calc: DriftCalculator = cls(**opts)
    except TypeError as exc:
        raise ConfigError(f"signal '{signal}' ({method}): {exc}") from exc
    return calc


def _accepted_kwargs(cls: type, inspect: Any) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        names |= {p for p, v in params.items() if p != "self" and v.kind != v.VAR_KEYWORD}
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
    return names


def _with_resolution(signal: str, options: Mapping[str, Any] | None, alpha: float,
                     share: float) -> dict[str, Any]:
    """Give a permutation test enough permutations that its smallest p-value, 1/(P+1), is at
    most half its first weighted-Holm threshold (``share * alpha``, ``share`` = its weight over
    the total), unless the caller chose a count."""
    import math

    opts = dict(options or {})
    needed = math.ceil(2.0 / (share * alpha))
    if "n_permutations" not in opts:
        if signal == "embedding" and opts.get("method", "mmd") == "mmd":
            opts["n_permutations"] = max(500, needed)
        elif signal in ("confidence", "tokenizer", "bbsd"):
            opts["n_permutations"] = max(1000, needed)
    return opts


@dataclass(frozen=True, slots=True)
class DriftReport:
    """All signals of one window, the overall (weighted Holm) verdict and its diagnosis."""

    n_reference: int
    n_current: int
    drifted: bool
    signals: tuple[DriftResult, ...]
    alpha: float = 0.01
    verdict: dict[str, Any] = field(default_factory=dict)
    #: the diagnosis stored with the report (:meth:`from_dict`); None: diagnose from the signals
    stored_diagnosis: Diagnosis | None = field(default=None, compare=False)

    def signal(self, name: str) -> DriftResult | None:
        """The result of signal ``name``, if it ran."""
        return next((s for s in self.signals if s.signal == name), None)

    def corrected(self, name: str) -> bool | None:
        """Whether signal ``name`` was rejected by the verdict's correction (None: not tested)."""
        for t in self.verdict.get("tests", []):
            if t["signal"] == name:
                return bool(t["rejected"])
        return None

    def diagnosis(self) -> Diagnosis:
        """What kind of shift this window shows, with its evidence (monitor.drift.diagnosis):
        the stored diagnosis of a report read back with :meth:`from_dict`, so a stored run keeps
        the diagnosis it was decided with; diagnosed from the signals otherwise (runs stored
        before diagnoses existed included)."""
        if self.stored_diagnosis is not None:
            return self.stored_diagnosis
        from monitor.drift.diagnosis import diagnose

        return diagnose(self)

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN §5 JSON object, plus ``verdict`` with the correction's details, each
        signal's ``corrected`` flag next to its raw ``drifted``, and ``diagnosis`` (§10)."""
        signals = []
        for s in self.signals:
            d = s.to_dict()
            d["corrected"] = self.corrected(s.signal)
            signals.append(d)
        return {"n_reference": self.n_reference, "n_current": self.n_current,
                "drifted": self.drifted, "signals": signals,
                "verdict": dict(self.verdict), "diagnosis": self.diagnosis().to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. ``drift_runs.result``):
        ``from_dict(d).to_dict() == d`` for every ``d`` that :meth:`to_dict` wrote (each
        signal's ``corrected`` flag is derived from the verdict again). Raises
        :class:`KeyError` / :class:`ValueError` / :class:`TypeError` on a malformed object."""
        from monitor.drift.diagnosis import Diagnosis

        sigs = tuple(DriftResult.from_dict(s) for s in data.get("signals") or [])
        verdict = dict(data.get("verdict") or {})
        diag = data.get("diagnosis")
        return cls(n_reference=int(data["n_reference"]), n_current=int(data["n_current"]),
                   drifted=bool(data["drifted"]), signals=sigs,
                   alpha=float(verdict.get("alpha", 0.01)), verdict=verdict,
                   stored_diagnosis=Diagnosis.from_dict(diag) if isinstance(diag, Mapping) else None)


def holm_verdict(results: Sequence[DriftResult], alpha: float,
                 weights: Mapping[str, float] | None = None) -> tuple[bool, dict[str, Any]]:
    """Overall drift decision: weighted Holm at ``alpha`` over the results that carry a p-value.

    ``weights`` maps signal names to positive weights (default :data:`DEFAULT_WEIGHTS`; a
    signal not named weighs 1).
    """
    table = DEFAULT_WEIGHTS if weights is None else weights
    tested = [r for r in results if r.status == "ok" and r.p_value is not None]
    w = [float(table.get(r.signal, 1.0)) for r in tested]
    h = weighted_holm([float(r.p_value) for r in tested if r.p_value is not None], w, alpha)
    total = sum(w)
    tests = [{"signal": r.signal, "p_value": r.p_value, "weight": wi,
              "first_step_threshold": alpha * wi / total, "adjusted_p_value": adj, "rejected": rej}
             for r, wi, adj, rej in zip(tested, w, h.adjusted, h.rejected, strict=True)]
    statuses = {r.signal: r.status for r in results}
    if tested:
        status = "ok"
    elif any(s == "error" for s in statuses.values()):
        status = "error"
    else:
        status = "insufficient_data"
    verdict = {
        "method": "weighted_holm", "alpha": alpha, "status": status, "tests": tests,
        "drifted_signals": [t["signal"] for t in tests if t["rejected"]],
        "informational": [r.signal for r in results
                          if r.status == "ok" and r.p_value is None and r.drifted],
        "not_tested": {k: v for k, v in statuses.items() if v != "ok"},
    }
    return h.any, verdict


def _embedding_rows(frame: DriftFrame) -> int:
    return 0 if frame.embedding is None else int(frame.embedding.shape[0])


class DriftSuite:
    """The configured set of drift signals; reusable across windows once fitted."""

    def __init__(
        self,
        signals: Sequence[str] | None = None,
        *,
        alpha: float = 0.01,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        names = list(DEFAULT_SIGNALS if signals is None else signals)
        if not names:
            raise ConfigError("no drift signals selected")
        for name in names:
            if name not in METHODS:
                raise ConfigError(f"unknown drift signal '{name}' (choose from {', '.join(METHODS)})")
        if len(set(names)) != len(names):
            raise ConfigError(f"drift signals repeated: {', '.join(names)}")
        opts = dict(options or {})
        for key in opts:
            if key not in names:
                raise ConfigError(f"options given for signal '{key}', which is not selected")
        table = dict(DEFAULT_WEIGHTS)
        for key, value in (weights or {}).items():
            if key not in names:
                raise ConfigError(f"weight given for signal '{key}', which is not selected")
            if not float(value) > 0:
                raise ConfigError(f"weight of signal '{key}' must be positive, got {value}")
            table[key] = float(value)
        self.weights = {name: table.get(name, 1.0) for name in names}
        total = sum(self.weights.values())
        self.signals = tuple(names)
        self.alpha = alpha
        self.seed = seed
        emb_opts = dict(opts.get("embedding") or {})
        all_rows = bool(emb_opts.pop("all_rows_past_max", True))
        if "embedding" in opts:
            opts["embedding"] = emb_opts
        self._calculators = {name: make_calculator(
            name, alpha=alpha, seed=seed,
            options=_with_resolution(name, opts.get(name), alpha, self.weights[name] / total))
            for name in names}
        self._all_rows = self._all_rows_companion(emb_opts) if all_rows else None
        self._fit_errors: dict[str, str] = {}
        self._all_rows_error = True
        self._n_reference: int | None = None

    def _all_rows_companion(self, emb_opts: Mapping[str, Any]) -> DriftCalculator | None:
        """The all-rows RFF/Hotelling test that replaces a capped embedding method on windows
        past its ``max_rows`` (option ``all_rows_past_max``, default on)."""
        calc = self._calculators.get("embedding")
        if calc is None or not hasattr(calc, "max_rows") or calc.method == "rff_hotelling":
            return None
        threshold = float(emb_opts.get("threshold", self.alpha))
        return make_calculator("embedding", alpha=self.alpha, seed=self.seed,
                               options={"method": "rff_hotelling", "threshold": threshold,
                                        "min_rows": calc.min_rows})

    def fit(self, reference: DriftFrame) -> Self:
        """Fit every signal on the reference window."""
        self._fit_errors = {}
        if self._all_rows is not None:
            try:
                self._all_rows.fit(reference)
            except CalculatorError:
                self._all_rows_error = True
            else:
                self._all_rows_error = False
        for name, calc in self._calculators.items():
            try:
                calc.fit(reference)
            except CalculatorError:
                raise
            except (ArithmeticError, ValueError, RuntimeError, MemoryError, IndexError) as exc:
                log.exception("fitting drift signal %s failed", name)
                self._fit_errors[name] = f"{type(exc).__name__}: {exc}"
        self._n_reference = reference.n
        return self

    def _uses_all_rows(self, calc: DriftCalculator, current: DriftFrame) -> bool:
        return (self._all_rows is not None and not self._all_rows_error
                and _embedding_rows(current) > int(getattr(calc, "max_rows", 0)))

    def compute(self, current: DriftFrame) -> DriftReport:
        """Run every signal on the current window and decide the overall verdict."""
        if self._n_reference is None:
            raise CalculatorError("DriftSuite: call fit() before compute()")
        results: list[DriftResult] = []
        for name, calc in self._calculators.items():
            if name in self._fit_errors:
                results.append(calc.result(statistic=None, p_value=None, drifted=False,
                                           n_current=current.n, status="error",
                                           details={"error": self._fit_errors[name]}))
                continue
            if name == "embedding" and self._uses_all_rows(calc, current):
                assert self._all_rows is not None
                res = self._all_rows.compute(current)
                details = {**res.details, "instead_of": calc.method,
                           "reason": f"window has more than max_rows={getattr(calc, 'max_rows', 0)} "
                                     "rows: every row is tested"}
                results.append(replace(res, details=details))
                continue
            results.append(calc.compute(current))
        drifted, verdict = holm_verdict(results, self.alpha, self.weights)
        return DriftReport(n_reference=self._n_reference, n_current=current.n, drifted=drifted,
                           signals=tuple(results), alpha=self.alpha, verdict=verdict)
