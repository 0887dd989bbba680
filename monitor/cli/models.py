"""``shiftwatch models list|show|register|shadow``, ``promote``, ``rollback`` and ``retrain``.

Commands open the store and the registry, run :meth:`Registry.recover` (a
crash between a DB switch and the pointer replace is repaired on start), call
the registry / retrain service and print the result. No logic lives here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover
    from monitor.registry import ModelVersion, Registry
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["register"]

models_app = typer.Typer(name="models", help="The model registry: list, show and register versions.",
                         no_args_is_help=True)

CONFIG = typer.Option(None, "--config", help="YAML settings file.")
DB = typer.Option(None, "--db", help="DuckDB file (overrides the config).")
REGISTRY = typer.Option(None, "--registry-dir", help="Model artifacts root (overrides the config).")
MODEL = typer.Option(..., "--model", "-m", help="Model name.")
JSON_OUT = typer.Option(False, "--json", help="Print JSON.")


@contextmanager
def _open(config: Path | None, db: Path | None, registry_dir: Path | None
          ) -> Iterator[tuple[Settings, Store, Registry]]:
    from monitor.registry import Registry
    from monitor.settings import load_settings
    from monitor.store import Store

    settings = load_settings(config, db_path=db, registry_dir=registry_dir)
    with Store(settings.db_path) as store:
        registry = Registry(store, settings.registry_dir)
        for name in registry.recover():
            typer.echo(f"recovered: the ACTIVE pointer of {name} was rewritten from the DB", err=True)
        yield settings, store, registry


def _line(mv: ModelVersion) -> str:
    f1 = (mv.metrics.get("evaluation") or {}).get("candidate", {}).get("production")
    score = f" prod-F1={f1:.4f}" if isinstance(f1, float) else ""
    created = mv.created_at.strftime("%Y-%m-%d %H:%M") if mv.created_at else "-"
    return (f"{mv.model_name:20} {mv.version:10} {mv.status:9} parent={mv.parent_version or '-':8} "
            f"{created}{score}")


@models_app.command("list")
def list_versions(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model."),
    as_json: bool = JSON_OUT, config: Path | None = CONFIG, db: Path | None = DB,
    registry_dir: Path | None = REGISTRY,
) -> None:
    """List model versions, oldest first."""
    with _open(config, db, registry_dir) as (_, _store, registry):
        versions = registry.versions(model)
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in versions], indent=2, default=str))
        return
    if not versions:
        typer.echo("no model versions registered")
    for mv in versions:
        typer.echo(_line(mv))


@models_app.command("show")
def show(
    version: str = typer.Argument(..., help="Version (e.g. v2); 'active' for the active one."),
    model: str = MODEL, config: Path | None = CONFIG, db: Path | None = DB,
    registry_dir: Path | None = REGISTRY,
) -> None:
    """Show one version (metadata, preprocessing, metrics) and the model's registry history, as JSON."""
    from monitor.errors import RegistryError

    with _open(config, db, registry_dir) as (_, _store, registry):
        mv = registry.active(model) if version == "active" else registry.get(model, version)
        if mv is None:
            raise RegistryError(f"model {model!r} has no active version")
        events = [e for e in registry.events(model) if mv.version in (e["from_version"], e["to_version"])]
    out: dict[str, Any] = {**mv.to_dict(), "events": events}
    typer.echo(json.dumps(out, indent=2, default=str))


@models_app.command("register")
def register_version(
    directory: Path = typer.Argument(..., help="A fine-tuned Hugging Face model directory."),
    name: str = typer.Option(..., "--name", help="Model name."),
    version: str | None = typer.Option(None, "--version", help="Version (default: next vN)."),
    train_file: Path | None = typer.Option(None, "--train-file",
                                           help="Original training data, JSONL or CSV of text,label."),
    labels: str | None = typer.Option(None, "--labels",
                                      help="Comma-separated label names in class order (default: config)."),
    max_length: int = typer.Option(128, "--max-length", help="Tokenizer max_length."),
    truncation_side: str = typer.Option("right", "--truncation-side", help="right or left."),
    pooling: str = typer.Option("mean", "--pooling", help="Embedding pooling: mean, cls or pooler."),
    activate: bool = typer.Option(False, "--activate", help="Make it the active version."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Import an existing fine-tuned model directory as a new version."""
    from monitor.registry import Preprocessing

    pre = Preprocessing(max_length=max_length, truncation_side=truncation_side,  # type: ignore[arg-type]
                        pooling=pooling,  # type: ignore[arg-type]
                        labels=tuple(x.strip() for x in labels.split(",")) if labels else ())
    with _open(config, db, registry_dir) as (_, _store, registry):
        mv = registry.register(name, directory, version=version, preprocessing=pre, train_file=train_file,
                               status="active" if activate else "candidate", reason="registered by CLI")
    typer.echo(f"registered {mv.model_name} {mv.version} ({mv.status}) at {mv.artifact_dir}")


@models_app.command("shadow")
def shadow(
    version: str | None = typer.Argument(None, help="Candidate to decide (default: every pending one)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model (required with VERSION)."),
    min_rows: int | None = typer.Option(None, "--min-rows",
                                        help="Labelled rows needed (default: what the retrain set)."),
    as_json: bool = JSON_OUT, config: Path | None = CONFIG, db: Path | None = DB,
    registry_dir: Path | None = REGISTRY,
) -> None:
    """Finish shadow evaluations: promote or reject candidates on traffic labelled since they were trained."""
    from monitor.retrain.service import ShadowCheck, ShadowNotReady, check_pending_shadow, shadow_evaluate

    if version is not None and model is None:
        raise typer.BadParameter("shadow VERSION needs --model", param_hint="--model")
    with _open(config, db, registry_dir) as (settings, store, _registry):
        if version is None:
            checks = check_pending_shadow(store, settings, model, min_rows=min_rows)
        else:
            assert model is not None
            try:
                checks = [ShadowCheck(model, version, outcome=shadow_evaluate(store, settings, model, version,
                                                                              min_rows=min_rows))]
            except ShadowNotReady as exc:
                checks = [ShadowCheck(model, version, waiting=str(exc))]
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in checks], indent=2, default=str))
        return
    if not checks:
        typer.echo("no candidates waiting for shadow evaluation")
    for c in checks:
        if c.outcome is None:
            typer.echo(f"{c.model_name} {c.version}: waiting ({c.waiting})")
            continue
        typer.echo(f"{c.model_name} {c.version}: {c.outcome.decision}")
        for r in c.outcome.reasons:
            typer.echo(f"  - {r}")


def promote(
    version: str = typer.Argument(..., help="Version to activate."),
    model: str = MODEL,
    reason: str = typer.Option("promoted by CLI", "--reason", help="Why (recorded)."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST the change to this URL."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Make VERSION the active version (DB + ACTIVE pointer, atomically)."""
    before, mv = _switch(config, db, registry_dir, webhook, model,
                         lambda registry: registry.promote(model, version, reason=reason))
    typer.echo(f"{model}: {before} -> {mv.version} (active)")


def rollback(
    model: str = MODEL,
    to: str | None = typer.Option(None, "--to", help="Version to restore (default: the previous one)."),
    reason: str = typer.Option("rolled back by CLI", "--reason", help="Why (recorded)."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST the change to this URL."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Restore the previously active version (or --to); the current one becomes rejected."""
    before, mv = _switch(config, db, registry_dir, webhook, model,
                         lambda registry: registry.rollback(model, to=to, reason=reason))
    typer.echo(f"{model}: rolled back {before} -> {mv.version}")


def _switch(
    config: Path | None, db: Path | None, registry_dir: Path | None, webhook: str | None, model: str,
    change: Callable[[Registry], ModelVersion],
) -> tuple[str, ModelVersion]:
    """Run one activation change (optionally announced to a webhook); return (previous, new)."""
    from monitor.registry import webhook_listener

    with _open(config, db, registry_dir) as (_, _store, registry):
        if webhook:
            registry.listeners.append(webhook_listener(webhook))
        before = registry.active(model)
        mv = change(registry)
    return (before.version if before else "-"), mv


def retrain(
    model: str = MODEL,
    reason: str = typer.Option("requested by CLI", "--reason", help="Why (recorded)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check data and config; train nothing."),
    strategy: str = typer.Option("gradual", "--strategy", help="gradual, full or head."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Total step budget (all phases)."),
    min_labelled: int = typer.Option(100, "--min-labelled", help="Labelled production rows needed."),
    production_share: float = typer.Option(0.2, "--production-share", help="Share of production rows."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the paired promotion tests."),
    max_forgetting: float = typer.Option(0.02, "--max-forgetting",
                                         help="ε: non-inferiority margin on original-data accuracy."),
    oos_not_higher: bool = typer.Option(False, "--require-oos-confidence-not-higher",
                                        help="Reject a candidate more confident on out-of-scope rows."),
    shadow: bool = typer.Option(False, "--shadow", help="Keep a passing candidate for shadow evaluation."),
    shadow_min_rows: int = typer.Option(50, "--shadow-min-rows",
                                        help="Shadow window: labelled rows logged after the candidate."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before the worker is stopped."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = JSON_OUT,
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Re-fine-tune the active version on labelled production rows; promote it only if it is better."""
    from monitor.retrain.guard import Guard
    from monitor.retrain.service import RetrainConfig
    from monitor.retrain.service import retrain as run_retrain
    from monitor.retrain.trainer import TrainConfig

    cfg = RetrainConfig(
        train=TrainConfig(strategy=strategy, max_steps=max_steps, progress=progress),  # type: ignore[arg-type]
        production_share=production_share, min_labelled=min_labelled,
        guard=Guard(alpha=alpha, max_forgetting=max_forgetting,
                    require_oos_confidence_not_higher=oos_not_higher), timeout_s=timeout, shadow=shadow,
        shadow_min_rows=shadow_min_rows)
    with _open(config, db, registry_dir) as (settings, store, _registry):
        outcome = run_retrain(store, settings, model, reason=reason, dry_run=dry_run, config=cfg)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2, default=str))
        return
    typer.echo(f"{model}: {outcome.decision} (candidate {outcome.candidate_version or '-'}, "
               f"parent {outcome.parent_version})")
    for r in outcome.reasons:
        typer.echo(f"  - {r}")


def register(app: typer.Typer) -> None:
    """Add the registry and retrain commands to the CLI."""
    app.add_typer(models_app, name="models")
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("retrain")(retrain)
