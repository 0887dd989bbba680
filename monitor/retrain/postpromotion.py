"""After a promotion: is the promoted version worse than the version it replaced, on the same rows?

A promoted version's own realized performance falls whenever harder traffic arrives, whether
the promotion was good or bad: comparing it with *its own* reference confuses "the traffic got
harder" with "the new model is worse". The question a rollback has to answer is the second
one, and it has a paired answer: score the promoted version **and the version it replaced**
(its parent: the ``from_version`` of its newest ``promote`` registry event, which is also what
``rollback`` restores) on the same labelled production rows logged since the promotion, and
test per-row correctness on the discordant rows (promoted worse than parent). A new domain that
is hard for both versions moves both accuracies and leaves the test alone; a promoted version
that is worse on the same rows shows up in the discordant rows.

The check re-runs at every window for the rule's whole horizon, on growing data. An exact
McNemar p-value re-run that often crosses α far more often than α when the two versions are
equally good (a week of hourly looks: about 25 %, docs/policy.md). The decision therefore uses
an **anytime-valid** p-value, ``1/E`` for the mixture e-value of
:func:`monitor.retrain.guard.mcnemar_evalue`: by Ville's inequality the chance that it is ever
≤ α, at any number of looks, is ≤ α. The fixed-sample exact p-value is kept as evidence.

Pure part: :func:`paired_vs_parent` (per-row predictions → :class:`ParentTest`: n, the
discordant counts, both accuracies, the effect with its interval, p, and the rows needed at
the observed effect) and :func:`parent_settings` (what the policy asks of the check).
I/O part: :func:`check_windows` selects the rows (:func:`monitor.retrain.service.live_rows`,
the shadow evaluation's selection: labelled, with stored text, label inside the label set),
re-scores only rows not scored before (``version_scores``; both versions loaded once per
call, never per window), and returns one :class:`ParentCheck` per window end;
:func:`attach` runs it for a cycle's window checks and records each in ``parent_checks``.

Rows without stored text (the privacy default) cannot be re-scored: they count in
``n_labelled_since_promotion`` but not in ``n_paired_with_parent``, and the test waits for
rows it can use (docs/policy.md says what the shipped policy does then).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.policy import Group, MetricCondition, Policy
from monitor.retrain.guard import (
    PairedPredictions,
    anytime_pvalue_worse,
    anytime_rows_needed,
    mcnemar_evalue,
    mcnemar_pvalue,
    score_ci,
)
from monitor.windowmetrics import PARENT_METRICS

if TYPE_CHECKING:  # pragma: no cover
    from monitor.registry import Registry
    from monitor.settings import Settings
    from monitor.store import Store
    from monitor.windowcheck import WindowCheck

__all__ = ["PARENT_METRICS", "ParentCheck", "ParentSettings", "ParentTest", "attach", "check_windows",
           "due", "paired_vs_parent", "parent_settings"]

log = logging.getLogger(__name__)

_DEFAULT_ALPHA = 0.05


# -- pure ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParentTest:
    """The promoted version against its parent on the same labelled rows.

    ``promoted_only`` (b): rows only the promoted version gets right; ``parent_only`` (c): rows
    only the parent gets right. ``effect`` = accuracy(promoted) − accuracy(parent), with its
    two-sided ``ci_level`` = 1 − 2α score interval (Tango); ``e_value``: the mixture e-value that
    the promoted version is worse (:func:`~monitor.retrain.guard.mcnemar_evalue`) and
    ``p_worse`` = min(1, 1/``e_value``), its anytime-valid p-value — what the rule decides on;
    ``p_exact`` = P[B ≤ b] under Binomial(b + c, ½), the fixed-sample one-sided exact McNemar
    p-value (evidence only: valid for one look, not for a look every window);
    ``rows_needed``: paired rows in total at which ``p_worse`` reaches α if the discordant rows
    keep the observed shares — ``None`` when the promoted version is not observed to be worse.
    With ``n == 0`` every statistic is ``None``.
    """

    n: int
    promoted_only: int
    parent_only: int
    promoted_accuracy: float | None
    parent_accuracy: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    p_worse: float | None
    rows_needed: int | None
    alpha: float
    e_value: float | None = None
    p_exact: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def paired_vs_parent(pairs: PairedPredictions, *, alpha: float = _DEFAULT_ALPHA) -> ParentTest:
    """Test ``pairs`` (``candidate`` = the promoted version, ``active`` = its parent): see
    :class:`ParentTest`. Deterministic: two integer counts, a beta integral, binomial tails."""
    level = 1.0 - 2.0 * alpha
    n = int(pairs.y_true.size)
    if n == 0:
        return ParentTest(0, 0, 0, None, None, None, None, None, level, None, None, alpha)
    right_p = pairs.candidate == pairs.y_true
    right_a = pairs.active == pairs.y_true
    b = int(np.sum(right_p & ~right_a))
    c = int(np.sum(~right_p & right_a))
    lo, hi = score_ci(n, b, c, level)
    return ParentTest(n=n, promoted_only=b, parent_only=c, promoted_accuracy=int(right_p.sum()) / n,
                      parent_accuracy=int(right_a.sum()) / n, effect=(b - c) / n, ci_low=lo, ci_high=hi,
                      ci_level=level, p_worse=anytime_pvalue_worse(b, c),
                      rows_needed=anytime_rows_needed(b / n, c / n, alpha=alpha), alpha=alpha,
                      e_value=mcnemar_evalue(b, c), p_exact=mcnemar_pvalue(b, c, alternative="less"))


@dataclass(frozen=True, slots=True)
class ParentSettings:
    """What a policy asks of the check: whether any rule reads a parent metric, over what horizon
    after a promotion (``None``: no bound), and the level α its rules test ``parent_paired_p`` at."""

    used: bool
    horizon: timedelta | None
    alpha: float


def _conditions(group: Group) -> Iterable[Any]:
    for item in group.all_ or group.any_ or ():
        if isinstance(item, Group):
            yield from _conditions(item)
        else:
            yield item


def _hours_bound(group: Group) -> float | None:
    """The largest ``hours_since_promotion`` a condition can hold at (``None``: unbounded)."""
    bounds: list[float | None] = []
    for item in group.all_ or group.any_ or ():
        if isinstance(item, Group):
            bounds.append(_hours_bound(item))
        elif isinstance(item, MetricCondition) and item.metric == "hours_since_promotion":
            ups = [v for v in (item.le, item.lt) if v is not None]
            bounds.append(min(ups) if ups else None)
        else:
            bounds.append(None)
    if group.all_ is not None:
        known = [b for b in bounds if b is not None]
        return min(known) if known else None
    return None if any(b is None for b in bounds) else max(b for b in bounds if b is not None)


def parent_settings(policy: Policy) -> ParentSettings:
    """Read :class:`ParentSettings` from the rules of ``policy`` that use a parent metric.

    The horizon is the longest ``hours_since_promotion`` bound of those rules (past it no rule
    can fire, so the check stops scoring); α is the largest ``parent_paired_p`` bound (default
    0.05): it sets the interval level and the rows-needed calculation, never the decision,
    which is the rule's own comparison.
    """
    rules = [r for r in policy.rules
             if any(isinstance(c, MetricCondition) and c.metric in PARENT_METRICS
                    for c in _conditions(r.when))]
    if not rules:
        return ParentSettings(False, None, _DEFAULT_ALPHA)
    hours = [_hours_bound(r.when) for r in rules]
    known = [h for h in hours if h is not None]
    horizon = None if len(known) < len(hours) else timedelta(hours=max(known))
    ps = [v for r in rules for c in _conditions(r.when)
          if isinstance(c, MetricCondition) and c.metric == "parent_paired_p"
          for v in (c.le, c.lt) if v is not None]
    alpha = max(ps) if ps and 0.0 < max(ps) < 0.5 else _DEFAULT_ALPHA
    return ParentSettings(True, horizon, alpha)


@dataclass(frozen=True, slots=True)
class ParentCheck:
    """The paired test of one model version against its parent as of one window end."""

    model_name: str
    version: str
    parent_version: str
    promoted_at: datetime
    until: datetime
    n_labelled: int
    test: ParentTest

    def metrics(self) -> dict[str, float | None]:
        """The policy metrics (:data:`PARENT_METRICS`)."""
        t = self.test
        return {"parent_paired_p": t.p_worse, "parent_accuracy_delta": t.effect,
                "n_paired_with_parent": float(t.n), "n_labelled_since_promotion": float(self.n_labelled)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``parent_checks.evidence``; the policy reads ``metrics``)."""
        return {"model_name": self.model_name, "version": self.version, "parent_version": self.parent_version,
                "promoted_at": self.promoted_at.isoformat(), "until": self.until.isoformat(),
                "n_labelled": self.n_labelled,
                "test": "anytime-valid mixture e-value on the discordant rows: promoted worse than parent",
                **self.test.to_dict(), "metrics": self.metrics()}


# -- I/O -----------------------------------------------------------------------------------------
def _scored(store: Store, model_name: str, version: str) -> dict[str, str]:
    return {str(r["event_id"]): str(r["predicted_label"])
            for r in store.fetch_dicts("parent_scored", {"model_name": model_name, "model_version": version})}


def _score_missing(store: Store, registry: Registry, model_name: str, versions: Sequence[Any],
                   rows: Sequence[Mapping[str, Any]], labels: Sequence[str], *, device: str | None,
                   cache: dict[str, dict[str, str]]) -> None:
    """Score the rows some version has no prediction for, with both versions (loaded once)."""
    import pyarrow as pa

    from monitor.retrain.evaluate import predict
    from monitor.retrain.service import live_examples, load_encoders

    missing = [r for r in rows if any(str(r["event_id"]) not in cache[v.version] for v in versions)]
    if not missing:
        return
    encoders = load_encoders(registry, versions[0], versions[1], device=device)
    examples = live_examples(missing)
    ids = [str(r["event_id"]) for r in missing]
    for mv, enc in zip(versions, encoders, strict=True):
        pred = predict(enc, examples, labels)
        names = [labels[int(k)] for k in pred.pred]
        table = pa.table({"model_name": [model_name] * len(ids), "model_version": [mv.version] * len(ids),
                          "event_id": ids, "predicted_label": names,
                          "confidence": pa.array(pred.confidence.tolist(), pa.float64())})
        with store.registered("_version_scores", table):
            store.execute("parent_insert_scores")
        cache[mv.version].update(zip(ids, names, strict=True))


def check_windows(store: Store, settings: Settings, model_name: str, version: str, ends: Sequence[datetime],
                  *, horizon: timedelta | None = None, alpha: float = _DEFAULT_ALPHA,
                  device: str | None = None) -> dict[datetime, ParentCheck]:
    """The paired test of ``version`` against the version it replaced, as of each of ``ends``.

    Empty when ``version`` was never promoted over another version, or when every end lies past
    ``horizon`` after the promotion. Rows counted for an end are those that arrived after the
    promotion (``ingested_at``, the sidecar's own clock, like the promotion's time: a serving
    host's clock, or the demo's simulated one, cannot pull in rows from before it, among them
    the rows the promoted version was trained on) and were made before the end (``ts``, the
    window's clock). Only rows some version was not scored on before are scored (both versions
    loaded once per call).
    """
    from monitor.registry import Registry
    from monitor.retrain.service import live_rows

    promo = store.fetch_dicts("parent_promotion", {"model_name": model_name, "model_version": version})
    if not promo or not ends:
        return {}
    promoted_at, parent_version = promo[0]["promoted_at"], str(promo[0]["parent_version"])
    ends = sorted(e for e in ends if e >= promoted_at and (horizon is None or e - promoted_at <= horizon))
    if not ends:
        return {}
    registry = Registry(store, settings.registry_dir)
    promoted, parent = registry.get(model_name, version), registry.get(model_name, parent_version)
    labels = list(promoted.preprocessing.labels)
    rows = [r for r in live_rows(store, model_name, labels, since=None, ingested_since=promoted_at)
            if r["ts"] < ends[-1]]
    cache = {v: _scored(store, model_name, v) for v in (version, parent_version)}
    _score_missing(store, registry, model_name, (promoted, parent), rows, labels, device=device, cache=cache)
    index = {lab: i for i, lab in enumerate(labels)}
    ts = np.array([r["ts"] for r in rows], dtype=object)
    y = np.array([index[r["label"]] for r in rows], dtype=np.int64)
    mine = np.array([index[cache[version][str(r["event_id"])]] for r in rows], dtype=np.int64)
    theirs = np.array([index[cache[parent_version][str(r["event_id"])]] for r in rows], dtype=np.int64)
    times = [r[0] for r in store.execute("parent_labelled_times",
                                         {"model_name": model_name, "since": promoted_at})]
    out: dict[datetime, ParentCheck] = {}
    for end in ends:
        keep = np.array([t < end for t in ts], dtype=bool)
        pairs = PairedPredictions(y[keep], mine[keep], theirs[keep], len(labels))
        out[end] = ParentCheck(model_name, version, parent_version, promoted_at, end,
                               n_labelled=sum(t < end for t in times),
                               test=paired_vs_parent(pairs, alpha=alpha))
    return out


def due(store: Store, policy: Policy, model_name: str, version: str, end: datetime) -> bool:
    """Whether a window of ``version`` ending at ``end`` needs the paired test: a rule of
    ``policy`` reads a parent metric, ``version`` was promoted over another version, and ``end``
    lies within the rules' horizon after that promotion."""
    wanted = parent_settings(policy)
    if not wanted.used:
        return False
    promo = store.fetch_dicts("parent_promotion", {"model_name": model_name, "model_version": version})
    if not promo:
        return False
    since = end - promo[0]["promoted_at"]
    return since >= timedelta(0) and (wanted.horizon is None or since <= wanted.horizon)


def attach(store: Store, settings: Settings, policy: Policy, checks: Sequence[WindowCheck], *,
           device: str | None = None) -> list[WindowCheck]:
    """The window checks of one model version with their :class:`ParentCheck` (``parent``), each
    recorded in ``parent_checks``; unchanged when the policy reads no parent metric or the version
    has nothing to compare with."""
    wanted = parent_settings(policy)
    if not wanted.used or not checks:
        return list(checks)
    first = checks[0]
    found = check_windows(store, settings, first.model_name, first.model_version, [c.end for c in checks],
                          horizon=wanted.horizon, alpha=wanted.alpha, device=device)
    out: list[WindowCheck] = []
    for wc in checks:
        pc = found.get(wc.end)
        if pc is None:
            out.append(wc)
            continue
        store.execute("parent_insert_check", {
            "run_id": wc.run_id, "model_name": pc.model_name, "model_version": pc.version,
            "parent_version": pc.parent_version, "evidence": json.dumps(pc.to_dict())})
        log.info("run %s: %s %s vs parent %s on %d paired rows: accuracy delta %s, p(worse) %s", wc.run_id,
                 pc.model_name, pc.version, pc.parent_version, pc.test.n, pc.test.effect, pc.test.p_worse)
        out.append(replace(wc, parent=pc))
    return out
