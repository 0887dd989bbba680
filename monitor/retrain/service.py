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
   and scored against the active version on the production-like slice and
   the original validation set (:func:`monitor.retrain.evaluate.decide`).
5. Promoted (registry switch + pointer + new drift reference set), kept as a
   ``candidate`` for shadow evaluation, or stored as ``rejected`` with the
   reasons. Every run is recorded in ``retrain_runs``.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

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
from monitor.retrain.evaluate import Guard, build_reference, decide, score
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
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["RetrainConfig", "RetrainOutcome", "ShadowCheck", "ShadowNotReady", "check_pending_shadow",
           "estimate", "evaluate_candidate", "pending_shadow", "retrain", "shadow_evaluate"]

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
    """What one retrain did: ``decision`` is promoted | rejected | shadow | dry_run (| failed | cancelled
    in the ``retrain_runs`` record)."""

    run_id: str
    model_name: str
    parent_version: str | None
    candidate_version: str | None
    decision: str
    reasons: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    reference_name: str | None = None

    @property
    def promoted(self) -> bool:
        """True when the candidate became the active version."""
        return self.decision == "promoted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["reasons"] = list(self.reasons)
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


def evaluate_candidate(store: Store, registry: Registry, active: ModelVersion, candidate: ModelVersion,
                       data: TrainingData, *, run_id: str, cfg: RetrainConfig,
                       train_summary: dict[str, Any] | None = None) -> RetrainOutcome:
    """Score candidate vs active, then promote, keep for shadow, or reject (see the module doc)."""
    name, labels = active.model_name, list(active.preprocessing.labels)
    device = resolve_device(cfg.train.device)
    cand_enc = registry.load_encoder(candidate, device=device)
    act_enc = registry.load_encoder(active, device=device)
    cand_scores = {"production": score(cand_enc, data.production_val, labels),
                   "original": score(cand_enc, data.original_val, labels)}
    act_scores = {"production": score(act_enc, data.production_val, labels),
                  "original": score(act_enc, data.original_val, labels)}
    decision = decide({k: v.macro_f1 for k, v in cand_scores.items()},
                      {k: v.macro_f1 for k, v in act_scores.items()}, cfg.guard)
    metrics: dict[str, Any] = {
        **decision.metrics, "data": data.summary(), "train": train_summary or {},
        "candidate_scores": {k: v.to_dict() for k, v in cand_scores.items()},
        "active_scores": {k: v.to_dict() for k, v in act_scores.items()}}
    stored: dict[str, Any] = {**candidate.metrics, "evaluation": metrics}
    if cfg.shadow and decision.promote:
        # What the shadow evaluation needs later: its window and this run's guard and reference sizes.
        stored["shadow"] = {"run_id": run_id, "min_rows": cfg.shadow_min_rows, "guard": asdict(cfg.guard),
                            "reference_rows": cfg.reference_rows,
                            "min_reference_rows": cfg.min_reference_rows}
    registry.set_metrics(name, candidate.version, stored)
    reasons = list(decision.reasons)
    if not decision.promote:
        registry.set_status(name, candidate.version, "rejected", reason="; ".join(reasons))
        return RetrainOutcome(run_id, name, active.version, candidate.version, "rejected",
                              tuple(reasons), metrics)
    if cfg.shadow:
        reasons.append(f"passed the guard; kept as candidate until {cfg.shadow_min_rows} labelled "
                       "production rows logged after it can decide (shadow evaluation)")
        return RetrainOutcome(run_id, name, active.version, candidate.version, "shadow",
                              tuple(reasons), metrics)
    fallback = list(data.production_val.texts) + list(data.original_val.texts)
    ref_name, note = _promote_with_reference(
        store, registry, candidate, cand_enc, reason=f"retrain {run_id}: " + "; ".join(reasons),
        origin=f"retrain:{run_id}", fallback_texts=fallback, n_recent=cfg.reference_rows,
        n_min=cfg.min_reference_rows)
    reasons.append(note)
    return RetrainOutcome(run_id, name, active.version, candidate.version, "promoted", tuple(reasons),
                          metrics, ref_name)


def _promote_with_reference(store: Store, registry: Registry, candidate: ModelVersion, encoder: Any, *,
                            reason: str, origin: str, fallback_texts: list[str], n_recent: int,
                            n_min: int) -> tuple[str | None, str]:
    """Promote ``candidate``, then build its drift reference set: (reference name or None, a reason line).

    The reference is the candidate's predictions on the newest ``n_recent``
    production texts (the new normal), topped up from ``fallback_texts`` to
    ``n_min`` rows. A failure to build it is logged and reported, not raised:
    the promotion has happened and the drift job falls back to its default.
    """
    name, version = candidate.model_name, candidate.version
    registry.promote(name, version, reason=reason)
    rows = store.execute("retrain_recent_texts", {"model_name": name, "n": n_recent})
    texts = [str(r[3]) for r in rows]
    if len(texts) < n_min:
        texts += fallback_texts[: n_min - len(texts)]
    try:
        ref_name, n = build_reference(store, encoder, model_name=name, model_version=version,
                                      labels=list(candidate.preprocessing.labels), texts=texts, origin=origin)
    except (ShiftwatchError, ImportError) as exc:
        log.warning("%s %s promoted but no reference set was built: %s", name, version, exc)
        return None, f"reference set not built: {exc}"
    return ref_name, f"reference set {ref_name} built from {n} rows"


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
    """Finish a shadow evaluation: score a ``candidate`` on live traffic logged since it was created.

    Both the candidate and the active version score the labelled production
    rows (with text) that arrived after the candidate was registered — traffic
    the candidate never trained on. Promote when the production macro-F1
    gain passes the guard's δ and the original-domain check done at training
    time still holds; otherwise reject. ``guard`` and ``min_rows`` default to
    what the retrain that kept the candidate was configured with (else
    :class:`Guard()` and 50). Fewer than ``min_rows`` such rows raise
    :class:`ShadowNotReady` and record nothing. A decision is recorded in
    ``retrain_runs``; a promotion builds the new version's reference set.
    """
    registry = Registry(store, settings.registry_dir, settings=settings)
    cand = registry.get(model_name, version)
    active = registry.active(model_name)
    if cand.status != "candidate" or active is None:
        raise RegistryError(f"{model_name} {version} is not a candidate beside an active version")
    kept = cand.metrics.get("shadow") or {}
    guard = guard or Guard(**kept.get("guard", {}))
    min_rows = int(min_rows if min_rows is not None else kept.get("min_rows", 50))
    labels = list(active.preprocessing.labels)
    rows = [r for r in store.fetch_dicts("retrain_labelled_rows",
                                         {"model_name": model_name, "since": cand.created_at})
            if r["label"] in set(labels)]
    if len(rows) < min_rows:
        raise ShadowNotReady(f"shadow evaluation of {model_name} {version} needs {min_rows} labelled rows "
                             f"logged since {cand.created_at}, found {len(rows)}")
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


def _shadow_decide(store: Store, registry: Registry, active: ModelVersion, cand: ModelVersion,
                   rows: list[dict[str, Any]], *, guard: Guard, run_id: str, device: str | None,
                   kept: Mapping[str, Any]) -> RetrainOutcome:
    name, labels = active.model_name, list(active.preprocessing.labels)
    live = Examples([r["text"] for r in rows], [r["label"] for r in rows])
    dev = resolve_device(device)
    cand_enc = registry.load_encoder(cand, device=dev)
    cand_f1 = score(cand_enc, live, labels).macro_f1
    act_f1 = score(registry.load_encoder(active, device=dev), live, labels).macro_f1
    ev = cand.metrics.get("evaluation") or {}
    original = {"candidate": float((ev.get("candidate") or {}).get("original", 0.0)),
                "active": float((ev.get("active") or {}).get("original", 0.0))}
    decision = decide({"production": cand_f1, "original": original["candidate"]},
                      {"production": act_f1, "original": original["active"]}, guard)
    metrics = {**decision.metrics, "n_live": len(live)}
    reasons = ["shadow: " + r for r in decision.reasons]
    if not decision.promote:
        registry.set_status(name, cand.version, "rejected", reason="; ".join(decision.reasons))
        return RetrainOutcome(run_id, name, active.version, cand.version, "rejected", tuple(reasons), metrics)
    ref_name, note = _promote_with_reference(
        store, registry, cand, cand_enc, reason=f"shadow evaluation {run_id} passed: " + "; ".join(reasons),
        origin=f"shadow:{run_id}", fallback_texts=list(live.texts),
        n_recent=int(kept.get("reference_rows", 1000)), n_min=int(kept.get("min_reference_rows", 200)))
    reasons.append(note)
    return RetrainOutcome(run_id, name, active.version, cand.version, "promoted", tuple(reasons), metrics,
                          ref_name)
