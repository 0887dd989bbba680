"""``retrain(...)``: the closed loop from labelled production rows to a promoted (or rejected) version.

1. The active version, its preprocessing and its registered original training
   data are looked up in the registry.
2. Training data is assembled (:mod:`monitor.retrain.data`); too few
   labelled production rows raise :class:`RetrainError` saying how many are
   needed.
3. A candidate is trained from the active weights — gradual unfreezing by
   default — in a worker process with a timeout, under the model's retrain
   lock; training logs go to ``training_logs`` under the retrain run id.
4. The candidate is registered (``candidate``, parent = the active version)
   and tested against the active version — exact McNemar on the
   production-like slice, non-inferiority on the original validation set,
   out-of-scope confidence (:func:`monitor.retrain.guard.judge`).
5. ``promote``: promoted (registry switch + pointer + a reference set of
   labelled held-out rows); ``undecided``: kept as a ``candidate`` in shadow
   until the labelled rows the test asked for arrive; ``reject``: stored as
   ``rejected`` with the evidence. Every run is recorded in ``retrain_runs``.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.errors import (
    ConfigError,
    InsufficientLabels,
    RegistryError,
    RetrainCancelled,
    RetrainError,
    ShiftwatchError,
)
from monitor.registry import ModelVersion, Registry
from monitor.retrain.data import TrainingData, assemble, labelled_production, load_examples, split_original
from monitor.retrain.evaluate import Predicted, build_reference, predict
from monitor.retrain.guard import (
    Guard,
    OosEvidence,
    PairedPredictions,
    PromotionDecision,
    judge,
    oos_evidence,
)
from monitor.retrain.trainer import (
    Examples,
    StepCallback,
    TrainConfig,
    measure_step_seconds,
    plan_steps,
    resolve_device,
    store_log_sink,
)
from monitor.retrain.worker import TrainJob, model_lock, run_in_worker, run_inline

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["RetrainConfig", "RetrainOutcome", "ShadowCheck", "ShadowNotReady", "check_pending_shadow",
           "estimate", "evaluate_candidate", "live_examples", "live_rows", "load_encoders", "pending_shadow",
           "retrain", "shadow_evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    """How a retrain assembles data, trains, and decides."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(progress=False))
    production_share: float = 0.2
    production_val_fraction: float = 0.25
    original_val_fraction: float = 0.15
    min_labelled: int = 100
    guard: Guard = field(default_factory=Guard)
    timeout_s: float = 3600.0
    use_worker: bool = True
    shadow: bool = False
    shadow_min_rows: int = 50
    reference_rows: int = 1000
    min_reference_rows: int = 200
    min_reference_labelled: int = 50
    reference_text: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shadow_min_rows < 1:
            raise ConfigError(f"retrain config 'shadow_min_rows': must be >= 1, got {self.shadow_min_rows}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RetrainConfig:
        """Build from plain mappings (a policy file), nested ``train`` and ``guard`` included.

        Unknown keys raise :class:`ConfigError` naming them.
        """
        def build(kind: Any, data: Any, where: str) -> Any:
            if not isinstance(data, Mapping):
                raise ConfigError(f"retrain config '{where}': expected a mapping")
            known = {f.name for f in fields(kind)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ConfigError(f"retrain config '{where}': unknown field(s) {', '.join(unknown)}")
            return kind(**data)

        top = dict(values)
        if "train" in top:
            top["train"] = build(TrainConfig, {"progress": False, **top["train"]}, "train")
        if "guard" in top:
            top["guard"] = build(Guard, top["guard"], "guard")
        config: RetrainConfig = build(cls, top, "retrain")
        return config


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """What one retrain did: ``decision`` is promoted | rejected | undecided | shadow | dry_run
    (| failed | cancelled in the ``retrain_runs`` record).

    ``promotion`` is the paired test's decision with its evidence (``None`` for a dry run).
    """

    run_id: str
    model_name: str
    parent_version: str | None
    candidate_version: str | None
    decision: str
    reasons: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    reference_name: str | None = None
    promotion: PromotionDecision | None = None

    @property
    def promoted(self) -> bool:
        """True when the candidate became the active version."""
        return self.decision == "promoted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "promotion"}
        d["reasons"] = list(self.reasons)
        d["promotion"] = self.promotion.to_dict() if self.promotion else None
        return d


def _original_data(registry: Registry, mv: ModelVersion, cfg: RetrainConfig) -> tuple[Examples, Examples]:
    """The original training and validation rows registered with ``mv`` (or an ancestor)."""
    cur: ModelVersion | None = mv
    while cur is not None and cur.train_file is None:
        cur = registry.get(mv.model_name, cur.parent_version) if cur.parent_version else None
    if cur is None or cur.train_file is None:
        raise RetrainError(
            f"{mv.model_name} {mv.version} has no registered original training data; register the "
            "model with --train-file (JSONL/CSV of text,label)")
    train, val = load_examples(cur.train_file)
    return split_original(train, val, val_fraction=cfg.original_val_fraction, seed=cfg.seed)


def _finish(store: Store, outcome: RetrainOutcome, *, settings: Settings, error: str | None = None) -> None:
    """Record the outcome and queue its event notification (kind ``retrain``) in one transaction."""
    from monitor.outbox import enqueue_event

    with store.transaction():
        store.execute("retrain_finish_run", {
            "run_id": outcome.run_id, "status": outcome.decision,
            "candidate_version": outcome.candidate_version, "reasons": json.dumps(list(outcome.reasons)),
            "metrics": json.dumps(outcome.metrics, default=str), "error": error})
        if outcome.decision != "dry_run":
            summary = (f"shiftwatch: retrain of {outcome.model_name} {outcome.parent_version or '-'}: "
                       f"{outcome.decision}" + (f" ({outcome.candidate_version})"
                                                if outcome.candidate_version else ""))
            enqueue_event(store, settings, "retrain",
                          {**outcome.to_dict(), "retrain_run_id": outcome.run_id, "error": error,
                           "model_version": outcome.candidate_version or outcome.parent_version,
                           "summary": summary},
                          dedupe_key=f"retrain|{outcome.run_id}")


def retrain(
    store: Store,
    settings: Settings,
    model_name: str,
    *,
    reason: str,
    dry_run: bool = False,
    config: RetrainConfig | None = None,
    run_id: str | None = None,
    on_step: StepCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> RetrainOutcome:
    """Retrain ``model_name`` from labelled production rows; promote or reject the candidate.

    ``dry_run`` checks that a retrain could run (active version, original
    data, enough labelled rows) and returns ``decision="dry_run"`` without
    training, with the step plan and an estimated time (:func:`estimate`).
    Raises :class:`RetrainError` (insufficient data, failed or
    timed-out training, a retrain already running) or :class:`RegistryError`
    (no active version); the run is recorded as ``failed`` in
    ``retrain_runs`` either way. A run refused for too few labelled rows is
    also recorded in ``retrain_refusals`` (the sidecar starts it again once
    enough labels are there: :mod:`monitor.retrain.background`).

    ``run_id`` names the run (default: a new id); ``on_step`` gets the trainer's progress;
    ``cancel`` is polled between training steps: once it answers true the run stops, is
    recorded as ``cancelled`` and :class:`RetrainCancelled` is raised — no candidate is
    registered.
    """
    cfg = config or RetrainConfig()
    registry = Registry(store, settings.registry_dir, settings=settings)
    active = registry.active(model_name)
    if active is None:
        raise RegistryError(f"model {model_name!r} has no active version to retrain")
    run_id = run_id or uuid.uuid4().hex
    store.execute("retrain_insert_run", {
        "run_id": run_id, "model_name": model_name, "parent_version": active.version, "reason": reason,
        "config": json.dumps(cfg.to_dict(), default=str)})
    base = RetrainOutcome(run_id, model_name, active.version, None, "failed", ())
    try:
        outcome = _retrain(store, registry, active, run_id, reason=reason, dry_run=dry_run, cfg=cfg,
                           on_step=on_step, cancel=cancel)
    except RetrainCancelled as exc:
        _finish(store, replace(base, decision="cancelled", reasons=(str(exc),)), settings=settings,
                error=str(exc))
        raise
    except InsufficientLabels as exc:
        _finish(store, replace(base, reasons=(str(exc),)), settings=settings, error=str(exc))
        if not dry_run:
            store.execute("retrain_jobs_insert_refusal", {
                "run_id": run_id, "model_name": model_name, "needed": exc.needed, "found": exc.found,
                "reason": reason, "config": json.dumps(cfg.to_dict(), default=str)})
        raise
    except ShiftwatchError as exc:
        _finish(store, replace(base, reasons=(str(exc),)), settings=settings, error=str(exc))
        raise
    except Exception as exc:
        _finish(store, replace(base, reasons=(str(exc),)), settings=settings, error=repr(exc))
        raise RetrainError(f"retrain of {model_name} failed: {exc}") from exc
    _finish(store, outcome, settings=settings)
    return outcome


def estimate(store: Store, active: ModelVersion, data: TrainingData, cfg: TrainConfig) -> dict[str, Any]:
    """Steps per phase of a retrain of ``active`` on ``data`` and its estimated training time.

    The time per step is the newest training run of the model (its wall time over its steps,
    evaluations included) when there is one, else the mean of two timed forward/backward steps
    on real batches of ``data`` with every layer trainable (the last phase's cost, so an upper
    bound of the earlier, partly frozen phases). ``step_time_source`` says which.
    """
    plan = plan_steps(active.artifact_dir, len(data.train), cfg)
    last = store.fetch_dicts("retrain_jobs_last_step_time", {"model_name": active.model_name})
    if last and last[0]["wall_s"] and last[0]["steps"]:
        per_step = float(last[0]["wall_s"]) / int(last[0]["steps"])
        source = (f"the last training run {last[0]['run_id']} ({int(last[0]['steps'])} steps in "
                  f"{float(last[0]['wall_s']):.1f} s, evaluations included)")
    else:
        per_step = measure_step_seconds(active.artifact_dir, data.train, labels=list(data.labels), config=cfg)
        source = (f"2 timed training steps now (batch {cfg.batch_size}, max_length {cfg.max_length}, "
                  "all layers trainable; evaluations not included)")
    total = sum(plan)
    return {"phases": len(plan), "steps_per_phase": plan, "total_steps": total,
            "seconds_per_step": per_step, "estimated_s": per_step * total, "step_time_source": source,
            "device": resolve_device(cfg.device)}


def _retrain(store: Store, registry: Registry, active: ModelVersion, run_id: str, *, reason: str,
             dry_run: bool, cfg: RetrainConfig, on_step: StepCallback | None = None,
             cancel: Callable[[], bool] | None = None) -> RetrainOutcome:
    name = active.model_name
    labels = list(active.preprocessing.labels)
    original, original_val = _original_data(registry, active, cfg)
    production = labelled_production(store, name, labels)
    data = assemble(production, original, original_val, labels=labels,
                    production_share=cfg.production_share,
                    production_val_fraction=cfg.production_val_fraction,
                    min_labelled=cfg.min_labelled, seed=cfg.seed, model_name=name)
    pre = active.preprocessing
    tcfg = replace(cfg.train, max_length=pre.max_length, truncation_side=pre.truncation_side,
                   seed=cfg.seed)
    if dry_run:
        plan = estimate(store, active, data, tcfg)
        steps = ", ".join(str(n) for n in plan["steps_per_phase"])
        return RetrainOutcome(run_id, name, active.version, None, "dry_run", (
            f"would train a candidate from {active.version}: {plan['total_steps']} steps "
            f"({cfg.train.strategy}, {plan['phases']} phase(s): {steps}) on {len(data.train)} rows, "
            f"device {plan['device']}",
            f"estimated training time {plan['estimated_s']:.0f} s at {plan['seconds_per_step']:.3f} s/step, "
            f"from {plan['step_time_source']}; then evaluation and, if promoted, a reference set"),
            {"data": data.summary(), "plan": plan})
    staging = registry.root / name / ".staging" / run_id
    job = TrainJob(str(active.artifact_dir), data.train, data.production_val, tuple(labels), tcfg,
                   str(staging))
    sink = store_log_sink(store, run_id, name)
    with model_lock(registry.root, name):
        try:
            result = (run_in_worker(job, timeout_s=cfg.timeout_s, log_sink=sink, on_step=on_step,
                                    cancel=cancel) if cfg.use_worker
                      else run_inline(job, log_sink=sink, on_step=on_step, cancel=cancel))
            if cancel is not None and cancel():
                raise RetrainCancelled(f"retrain {run_id} cancelled after training; nothing registered")
            candidate = registry.register(
                name, staging, preprocessing=pre, parent=active.version,
                metrics={"train": result.to_dict(), "data": data.summary(), "run_id": run_id},
                train_file=None, reason=reason)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return evaluate_candidate(store, registry, active, candidate, data, run_id=run_id, cfg=cfg,
                              train_summary=result.to_dict())


def _pairs(cand: Predicted, act: Predicted) -> PairedPredictions:
    return PairedPredictions(cand.y_true, cand.pred, act.pred, cand.n_classes)


def _out_of_scope(store: Store, name: str, labels: list[str], cand_enc: Any, act_enc: Any, guard: Guard, *,
                  ingested_since: datetime | None = None, n: int = 2000) -> OosEvidence | None:
    """Both models' confidence on labelled rows whose label is outside the label set (newest ``n``;
    only rows ingested at or after ``ingested_since`` when it is set)."""
    rows = store.fetch_dicts("promotion_out_of_scope_rows",
                             {"model_name": name, "labels": labels, "ingested_since": ingested_since, "n": n})
    if not rows:
        return None
    texts = Examples([str(r["text"]) for r in rows], [str(r["label"]) for r in rows])
    cand, act = predict(cand_enc, texts, labels), predict(act_enc, texts, labels)
    return oos_evidence(cand.confidence, act.confidence, labels=texts.labels,
                        tie_tolerance=guard.tie_tolerance)


def evaluate_candidate(store: Store, registry: Registry, active: ModelVersion, candidate: ModelVersion,
                       data: TrainingData, *, run_id: str, cfg: RetrainConfig,
                       train_summary: dict[str, Any] | None = None) -> RetrainOutcome:
    """Test candidate vs active (:func:`monitor.retrain.guard.judge`), then act on the outcome.

    ``promote``: promoted (or kept for shadow evaluation when ``cfg.shadow``);
    ``reject``: stored as ``rejected``; ``undecided``: kept as a candidate in
    shadow until the labelled rows the test asked for have arrived
    (``decision="undecided"``). The evidence is stored under
    ``metrics["evaluation"]["promotion"]`` of the candidate and in ``retrain_runs``.
    """
    name, labels = active.model_name, list(active.preprocessing.labels)
    device = resolve_device(cfg.train.device)
    cand_enc = registry.load_encoder(candidate, device=device)
    act_enc = registry.load_encoder(active, device=device)
    cand_p = {"production": predict(cand_enc, data.production_val, labels),
              "original": predict(cand_enc, data.original_val, labels)}
    act_p = {"production": predict(act_enc, data.production_val, labels),
             "original": predict(act_enc, data.original_val, labels)}
    oos = _out_of_scope(store, name, labels, cand_enc, act_enc, cfg.guard)
    original = _pairs(cand_p["original"], act_p["original"])
    decision = judge(_pairs(cand_p["production"], act_p["production"]), original, cfg.guard, oos=oos)
    cand_scores = {k: v.scores() for k, v in cand_p.items()}
    act_scores = {k: v.scores() for k, v in act_p.items()}
    metrics: dict[str, Any] = {
        "promotion": decision.to_dict(), "guard": asdict(cfg.guard),
        "candidate": {k: v.macro_f1 for k, v in cand_scores.items()},
        "active": {k: v.macro_f1 for k, v in act_scores.items()},
        "data": data.summary(), "train": train_summary or {},
        "candidate_scores": {k: v.to_dict() for k, v in cand_scores.items()},
        "active_scores": {k: v.to_dict() for k, v in act_scores.items()}}
    stored: dict[str, Any] = {**candidate.metrics, "evaluation": metrics}
    reasons = list(decision.reasons)
    waiting = decision.outcome == "undecided" or (cfg.shadow and decision.promote)
    if waiting:
        # What the shadow evaluation needs later: its window, the guard, the original-data pairs
        # (the forgetting check is not repeated on live traffic) and the reference sizes.
        need = decision.rows_needed if decision.outcome == "undecided" else None
        stored["shadow"] = {"run_id": run_id, "min_rows": max(cfg.shadow_min_rows, need or 0),
                            "guard": asdict(cfg.guard), "reference_rows": cfg.reference_rows,
                            "min_reference_rows": cfg.min_reference_rows,
                            "reference_text": cfg.reference_text,
                            "original_pairs": {"y_true": original.y_true.tolist(),
                                               "candidate": original.candidate.tolist(),
                                               "active": original.active.tolist()}}
    registry.set_metrics(name, candidate.version, stored)
    if decision.outcome == "reject":
        registry.set_status(name, candidate.version, "rejected", reason="; ".join(reasons))
        return RetrainOutcome(run_id, name, active.version, candidate.version, "rejected",
                              tuple(reasons), metrics, promotion=decision)
    if waiting:
        min_rows = stored["shadow"]["min_rows"]
        what = "passed the test" if decision.promote else "undecided"
        reasons.append(f"{what}; kept as candidate until {min_rows} labelled production rows ingested after "
                       "it can decide (shadow evaluation)")
        return RetrainOutcome(run_id, name, active.version, candidate.version,
                              "shadow" if decision.promote else "undecided", tuple(reasons), metrics,
                              promotion=decision)
    # labelled baseline = the traffic the version will see: the held-out production slice, topped up
    # from the original validation data only to min_reference_labelled rows (a reference dominated by the
    # original domain would make the new domain look like a performance drop and roll back a good version)
    top_up = max(0, cfg.min_reference_labelled - len(data.production_val))
    labelled = _concat(data.production_val, Examples(list(data.original_val.texts)[:top_up],
                                                     list(data.original_val.labels)[:top_up]))
    ref_name, note = _promote_with_reference(
        store, registry, candidate, cand_enc, reason=f"retrain {run_id}: " + reasons[-1],
        origin=f"retrain:{run_id}", labelled=labelled, n_recent=cfg.reference_rows,
        n_min=cfg.min_reference_rows, keep_text=cfg.reference_text)
    reasons.append(note)
    return RetrainOutcome(run_id, name, active.version, candidate.version, "promoted", tuple(reasons),
                          metrics, ref_name, promotion=decision)


def _concat(*parts: Examples) -> Examples:
    return Examples([t for p in parts for t in p.texts], [y for p in parts for y in p.labels])


def _promote_with_reference(store: Store, registry: Registry, candidate: ModelVersion, encoder: Any, *,
                            reason: str, origin: str, labelled: Examples, n_recent: int, n_min: int,
                            keep_text: bool = False) -> tuple[str | None, str]:
    """Promote ``candidate``, then build its drift reference set: (reference name or None, a reason line).

    The reference holds ``labelled`` — held-out rows inside the label set the
    candidate never trained on (the production-like slice, topped up from the
    original validation data to ``min_reference_labelled`` rows), *with their
    labels*, so the new version's performance
    signal and the rollback rule have a labelled baseline — followed by the
    newest production texts (the new normal, unlabelled) up to ``n_recent``
    rows, at least ``n_min`` where there are that many. Text is kept only when
    ``keep_text`` (the retrain's ``reference_text`` privacy setting; off by
    default, like a record's ``text``). A failure to build it is logged and
    reported, not raised: the promotion has happened and the drift job falls
    back to its default.
    """
    name, version = candidate.model_name, candidate.version
    registry.promote(name, version, reason=reason)
    texts: list[str] = list(labelled.texts)[: max(n_recent, n_min)]
    truth: list[str | None] = [str(y) for y in list(labelled.labels)[: len(texts)]]
    want = max(n_recent, n_min)
    if len(texts) < want:
        recent = [str(r[3]) for r in store.execute("retrain_recent_texts",
                                                   {"model_name": name, "n": want - len(texts)})]
        texts.extend(recent)
        truth.extend([None] * len(recent))
    try:
        ref_name, n = build_reference(store, encoder, model_name=name, model_version=version,
                                      labels=list(candidate.preprocessing.labels), texts=texts, origin=origin,
                                      true_labels=truth, keep_text=keep_text)
    except (ShiftwatchError, ImportError) as exc:
        log.warning("%s %s promoted but no reference set was built: %s", name, version, exc)
        return None, f"reference set not built: {exc}"
    n_lab = sum(y is not None for y in truth)
    return ref_name, f"reference set {ref_name} built from {n} rows ({n_lab} labelled held-out rows)"


class ShadowNotReady(RetrainError):
    """A shadow candidate has not seen enough labelled traffic yet (try again later)."""


def pending_shadow(store: Store) -> list[tuple[str, str]]:
    """(model, version) of every candidate a retrain kept for shadow evaluation and nobody decided yet."""
    return [(str(r["model_name"]), str(r["candidate_version"]))
            for r in store.fetch_dicts("retrain_shadow_pending")]


@dataclass(frozen=True, slots=True)
class ShadowCheck:
    """One pending shadow candidate looked at: decided (``outcome``) or still ``waiting`` (why)."""

    model_name: str
    version: str
    outcome: RetrainOutcome | None = None
    waiting: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"model_name": self.model_name, "version": self.version,
                "decision": self.outcome.decision if self.outcome else "waiting",
                "outcome": self.outcome.to_dict() if self.outcome else None, "waiting": self.waiting}


def check_pending_shadow(store: Store, settings: Settings, model_name: str | None = None, *,
                         min_rows: int | None = None, device: str | None = None) -> list[ShadowCheck]:
    """Decide every pending shadow candidate (of ``model_name``) that has seen enough traffic.

    Candidates still short of their window come back as ``waiting``; other
    errors propagate (the scheduler records them as a failed job).
    """
    checks: list[ShadowCheck] = []
    for name, version in pending_shadow(store):
        if model_name is not None and name != model_name:
            continue
        try:
            checks.append(ShadowCheck(name, version, outcome=shadow_evaluate(
                store, settings, name, version, min_rows=min_rows, device=device)))
        except ShadowNotReady as exc:
            checks.append(ShadowCheck(name, version, waiting=str(exc)))
    return checks


def shadow_evaluate(
    store: Store,
    settings: Settings,
    model_name: str,
    version: str,
    *,
    guard: Guard | None = None,
    min_rows: int | None = None,
    device: str | None = None,
) -> RetrainOutcome:
    """Decide a waiting ``candidate`` again on live traffic ingested since it was created.

    Both the candidate and the active version score the labelled production
    rows (with text, inside the label set) ingested after the candidate was
    registered (the store's clock, not the rows' own timestamps, which a
    client sets) — traffic it never trained on — and the paired test
    (:func:`monitor.retrain.guard.judge`) decides with the original-data pairs
    kept from training time. ``promote`` promotes and builds the new
    reference; ``reject`` rejects; ``undecided`` keeps the candidate waiting
    for the rows the test now asks for (``decision="undecided"``). ``guard``
    and ``min_rows`` default to what the retrain that kept the candidate
    stored (else :class:`Guard()` and 50). Fewer than ``min_rows`` rows raise
    :class:`ShadowNotReady` and record nothing; a decision is recorded in
    ``retrain_runs``.
    """
    registry = Registry(store, settings.registry_dir, settings=settings)
    cand = registry.get(model_name, version)
    active = registry.active(model_name)
    if cand.status != "candidate" or active is None:
        raise RegistryError(f"{model_name} {version} is not a candidate beside an active version")
    kept = cand.metrics.get("shadow") or {}
    guard = guard or Guard(**kept.get("guard", {}))
    min_rows = int(min_rows if min_rows is not None else kept.get("min_rows", 50))
    # by ingestion time (the store's clock), not by the rows' own timestamps: a row stamped after
    # the candidate may have arrived before it, and the candidate may have trained on it
    rows = live_rows(store, model_name, active.preprocessing.labels, since=None,
                     ingested_since=cand.created_at)
    if len(rows) < min_rows:
        raise ShadowNotReady(f"shadow evaluation of {model_name} {version} needs {min_rows} labelled rows "
                             f"ingested since {cand.created_at}, found {len(rows)}")
    run_id = uuid.uuid4().hex
    store.execute("retrain_insert_run", {
        "run_id": run_id, "model_name": model_name, "parent_version": active.version,
        "reason": f"shadow evaluation of {version}",
        "config": json.dumps({"guard": asdict(guard), "min_rows": min_rows})})
    base = RetrainOutcome(run_id, model_name, active.version, version, "failed", ())
    try:
        outcome = _shadow_decide(store, registry, active, cand, rows, guard=guard, run_id=run_id,
                                 device=device, kept=kept)
    except Exception as exc:
        _finish(store, replace(base, reasons=(str(exc),)), settings=settings, error=repr(exc))
        raise
    _finish(store, outcome, settings=settings)
    return outcome


def live_rows(store: Store, model_name: str, labels: Sequence[str], *, since: datetime | None,
              ingested_since: datetime | None = None) -> list[dict[str, Any]]:
    """Labelled production rows of ``model_name`` with text and a label inside ``labels``, logged at
    or after ``since`` (and ingested at or after ``ingested_since``), oldest first
    (``retrain_labelled_rows``): the live rows two versions are both scored on, by a shadow
    evaluation and by the post-promotion check (:mod:`monitor.retrain.postpromotion`)."""
    keep = set(labels)
    rows = store.fetch_dicts("retrain_labelled_rows", {"model_name": model_name, "since": since,
                                                       "ingested_since": ingested_since})
    return [r for r in rows if r["label"] in keep]


def live_examples(rows: Sequence[Mapping[str, Any]]) -> Examples:
    """The texts and labels of :func:`live_rows` rows."""
    return Examples([str(r["text"]) for r in rows], [str(r["label"]) for r in rows])


def load_encoders(registry: Registry, first: ModelVersion, second: ModelVersion, *,
                  device: str | None = None) -> tuple[Any, Any]:
    """Both versions' classifiers on one device (``None``: CUDA when there is one), checksums verified."""
    dev = resolve_device(device)
    return registry.load_encoder(first, device=dev), registry.load_encoder(second, device=dev)


def _kept_original(kept: Mapping[str, Any], n_classes: int) -> PairedPredictions | None:
    pairs = kept.get("original_pairs")
    if not pairs:
        return None
    return PairedPredictions(np.asarray(pairs["y_true"]), np.asarray(pairs["candidate"]),
                             np.asarray(pairs["active"]), n_classes)


def _shadow_decide(store: Store, registry: Registry, active: ModelVersion, cand: ModelVersion,
                   rows: list[dict[str, Any]], *, guard: Guard, run_id: str, device: str | None,
                   kept: Mapping[str, Any]) -> RetrainOutcome:
    name, labels = active.model_name, list(active.preprocessing.labels)
    live = live_examples(rows)
    cand_enc, act_enc = load_encoders(registry, cand, active, device=device)
    pc, pa_ = predict(cand_enc, live, labels), predict(act_enc, live, labels)
    oos = _out_of_scope(store, name, labels, cand_enc, act_enc, guard, ingested_since=cand.created_at)
    decision = judge(_pairs(pc, pa_), _kept_original(kept, len(labels)), guard, oos=oos)
    metrics: dict[str, Any] = {"promotion": decision.to_dict(), "n_live": len(live),
                               "candidate": {"production": pc.scores().macro_f1},
                               "active": {"production": pa_.scores().macro_f1}}
    reasons = ["shadow: " + r for r in decision.reasons]
    if decision.outcome == "reject":
        registry.set_status(name, cand.version, "rejected", reason="; ".join(decision.reasons))
        return RetrainOutcome(run_id, name, active.version, cand.version, "rejected", tuple(reasons), metrics,
                              promotion=decision)
    if decision.outcome == "undecided":
        need = max(int(kept.get("min_rows", 0)), len(live) + (decision.more_rows_needed or 0))
        if need <= len(live):  # more production rows are not what is missing: back off
            need = 2 * len(live)
        registry.set_metrics(name, cand.version, {**cand.metrics, "shadow": {**kept, "min_rows": need}})
        reasons.append(f"shadow: still undecided; decided again once {need} labelled rows ingested after it "
                       "have arrived")
        return RetrainOutcome(run_id, name, active.version, cand.version, "undecided", tuple(reasons),
                              metrics, promotion=decision)
    ref_name, note = _promote_with_reference(
        store, registry, cand, cand_enc, reason=f"shadow evaluation {run_id}: " + decision.reasons[-1],
        origin=f"shadow:{run_id}", labelled=live, n_recent=int(kept.get("reference_rows", 1000)),
        n_min=int(kept.get("min_reference_rows", 200)), keep_text=bool(kept.get("reference_text", False)))
    reasons.append(note)
    return RetrainOutcome(run_id, name, active.version, cand.version, "promoted", tuple(reasons), metrics,
                          ref_name, promotion=decision)
