"""``shiftwatch models list|show|register|shadow``, ``promote``, ``rollback``, ``retrain [status|cancel]``.

Commands run :mod:`monitor.operations` through a backend (:mod:`monitor.cli.backend`): the
running sidecar's API when one holds the DB, else the file itself (after
:meth:`Registry.recover`: a crash between a DB switch and the pointer replace is repaired on
open). They print the result. No logic lives here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

models_app = typer.Typer(name="models", help="The model registry: list, show and register versions.",
                         no_args_is_help=True)

CONFIG = typer.Option(None, "--config", help="YAML settings file.")
DB = typer.Option(None, "--db", help="DuckDB file (overrides the config).")
REGISTRY = typer.Option(None, "--registry-dir", help="Model artifacts root (overrides the config).")
MODEL = typer.Option(..., "--model", "-m", help="Model name.")
JSON_OUT = typer.Option(False, "--json", help="Print JSON.")


def _backend(config: Path | None, db: Path | None, registry_dir: Path | None) -> Any:
    from monitor.cli.backend import open_backend

    return open_backend(config, db_path=db, registry_dir=registry_dir)


def _line(mv: dict[str, Any]) -> str:
    f1 = ((mv.get("metrics") or {}).get("evaluation") or {}).get("candidate", {}).get("production")
    score = f" prod-F1={f1:.4f}" if isinstance(f1, float) else ""
    created = str(mv.get("created_at") or "-").replace("T", " ")[:16]
    parent = mv.get("parent_version") or "-"
    return (f"{mv['model_name']:20} {mv['version']:10} {mv['status']:9} parent={parent:8} "
            f"{created}{score}")


@models_app.command("list")
def list_versions(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model."),
    as_json: bool = JSON_OUT, config: Path | None = CONFIG, db: Path | None = DB,
    registry_dir: Path | None = REGISTRY,
) -> None:
    """List model versions, oldest first."""
    with _backend(config, db, registry_dir) as backend:
        versions = backend.call("models_list", model=model)
    if as_json:
        typer.echo(json.dumps(versions, indent=2, default=str))
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
    with _backend(config, db, registry_dir) as backend:
        out = backend.call("models_show", model=model, version=version)
    typer.echo(json.dumps(out, indent=2, default=str))


@models_app.command("register")
def register_version(
    directory: Path = typer.Argument(..., help="A fine-tuned Hugging Face model directory."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name (required)."),
    old_name: str | None = typer.Option(None, "--name", hidden=True, help="Deprecated: use --model."),
    version: str | None = typer.Option(None, "--version", help="Version (default: next vN)."),
    train_file: Path | None = typer.Option(None, "--train-file",
                                           help="Original training data, JSONL or CSV of text,label."),
    labels: str | None = typer.Option(None, "--labels",
                                      help="Comma-separated label names in class order (default: config)."),
    max_length: int = typer.Option(128, "--max-length", help="Tokenizer max_length."),
    truncation_side: str = typer.Option("right", "--truncation-side", help="right or left."),
    pooling: str = typer.Option("mean", "--pooling", help="Embedding pooling: mean, cls or pooler."),
    activate: bool = typer.Option(False, "--activate", help="Make it the active version."),
    embedding_dim: int | None = typer.Option(
        None, "--embedding-dim", min=1,
        help="Embedding dimension of this version's records (default: the first accepted record)."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Import an existing fine-tuned model directory as a new version.

    With a running sidecar, DIR and --train-file are read by the sidecar, on its host.
    """
    from monitor.cli.options import renamed

    name = renamed(model, old_name, flag="--model", old_flag="--name", required=True)
    with _backend(config, db, registry_dir) as backend:
        mv = backend.call("models_register", directory=str(directory), name=name, version=version,
                          train_file=str(train_file) if train_file else None,
                          labels=[x.strip() for x in labels.split(",")] if labels else None,
                          max_length=max_length, truncation_side=truncation_side, pooling=pooling,
                          activate=activate, embedding_dim=embedding_dim)
    typer.echo(f"registered {mv['model_name']} {mv['version']} ({mv['status']}) at {mv['artifact_dir']}")


@models_app.command("dim")
def embedding_dim(
    model: str = MODEL,
    version: str = typer.Option(..., "--version", help="Model version."),
    set_dim: int | None = typer.Option(None, "--set", min=1, help="Declare this dimension."),
    reset: bool = typer.Option(False, "--reset",
                               help="Forget the dimension; the next accepted record fixes it."),
    url: str | None = typer.Option(None, "--url", envvar="SHIFTWATCH_URL",
                                   help="A running sidecar to ask (it holds the DB); default: open "
                                        "the DB file."),
    config: Path | None = CONFIG, db: Path | None = DB,
) -> None:
    """Show, declare (--set N) or reset (--reset) the embedding dimension of a model version."""
    from monitor.errors import ConfigError

    if set_dim is not None and reset:
        raise ConfigError("give --set or --reset, not both")
    if url:
        out = _dim_remote(url, model, version, set_dim, reset)
    else:
        from monitor.settings import load_settings
        from monitor.store import Store

        settings = load_settings(config, db_path=db)
        with Store(settings.db_path) as store:
            if set_dim is not None:
                store.declare_embedding_dim(model, version, set_dim)
            if reset:
                out = {"model_name": model, "model_version": version, "dim": None,
                       "previous_dim": store.reset_embedding_dim(model, version)}
            else:
                row = store.embedding_dim(model, version)
                out = {"model_name": model, "model_version": version,
                       "dim": row["dim"] if row else None, "origin": row["origin"] if row else None}
    if reset:
        typer.echo(f"{model} {version}: embedding dimension reset (was {out.get('previous_dim')}); "
                   "the next accepted record fixes it")
    else:
        typer.echo(f"{model} {version}: embedding dimension {out.get('dim') or 'not fixed yet'}"
                   + (f" ({out['origin']})" if out.get("origin") else ""))


def _dim_remote(url: str, model: str, version: str, set_dim: int | None, reset: bool) -> dict[str, Any]:
    """Ask a running sidecar (``/v1/models/{m}/versions/{v}/embedding-dim``)."""
    from urllib.parse import quote

    import httpx

    from monitor.errors import ConfigError
    from monitor.settings import resolve_token

    token = resolve_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    path = (f"{url.rstrip('/')}/v1/models/{quote(model, safe='')}/versions/"
            f"{quote(version, safe='')}/embedding-dim")
    try:
        with httpx.Client(timeout=10.0, headers=headers) as client:
            if set_dim is not None:
                resp = client.put(path, json={"dim": set_dim})
            elif reset:
                resp = client.delete(path)
            else:
                resp = client.get(path)
    except httpx.HTTPError as exc:
        raise ConfigError(f"{url}: cannot reach the sidecar: {exc}") from exc
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text[:200]
        raise ConfigError(f"{url}: HTTP {resp.status_code}: {detail}")
    result: dict[str, Any] = resp.json()
    return result


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
    if version is not None and model is None:
        raise typer.BadParameter("shadow VERSION needs --model", param_hint="--model")
    with _backend(config, db, registry_dir) as backend:
        checks = backend.call("models_shadow", model=model, version=version, min_rows=min_rows)
    if as_json:
        typer.echo(json.dumps(checks, indent=2, default=str))
        return
    if not checks:
        typer.echo("no candidates waiting for shadow evaluation")
    for c in checks:
        if c["outcome"] is None:
            typer.echo(f"{c['model_name']} {c['version']}: waiting ({c['waiting']})")
            continue
        typer.echo(f"{c['model_name']} {c['version']}: {c['outcome']['decision']}")
        for r in c["outcome"]["reasons"]:
            typer.echo(f"  - {r}")


def promote(
    version: str = typer.Argument(..., help="Version to activate."),
    model: str = MODEL,
    reason: str = typer.Option("promoted by CLI", "--reason", help="Why (recorded)."),
    webhook: str | None = typer.Option(None, "--webhook", help="Notify this URL (via the outbox)."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Make VERSION the active version (DB + ACTIVE pointer, atomically)."""
    with _backend(config, db, registry_dir) as backend:
        out = backend.call("promote", model=model, version=version, reason=reason, webhook=webhook)
    typer.echo(f"{model}: {out['from_version'] or '-'} -> {out['to_version']} (active)")
    _warn_undelivered(out)


def rollback(
    model: str = MODEL,
    to: str | None = typer.Option(None, "--to", help="Version to restore (default: the previous one)."),
    reason: str = typer.Option("rolled back by CLI", "--reason", help="Why (recorded)."),
    webhook: str | None = typer.Option(None, "--webhook", help="Notify this URL (via the outbox)."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Restore the previously active version (or --to); the current one becomes rejected."""
    with _backend(config, db, registry_dir) as backend:
        out = backend.call("rollback", model=model, to=to, reason=reason, webhook=webhook)
    typer.echo(f"{model}: rolled back {out['from_version'] or '-'} -> {out['to_version']}")
    _warn_undelivered(out)


def _warn_undelivered(out: dict[str, Any]) -> None:
    for key in out.get("undelivered") or ():
        typer.echo(f"warning: notification {key} not delivered yet; it stays in the outbox", err=True)


retrain_app = typer.Typer(name="retrain", help="Re-fine-tune the active version; follow or cancel a "
                          "background retrain of the sidecar.", invoke_without_command=True)


@retrain_app.callback()
def retrain(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Model name (to start a retrain)."),
    reason: str = typer.Option("requested by CLI", "--reason", help="Why (recorded)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Check data and config; state steps, phases and estimated time."),
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
    wait: bool = typer.Option(False, "--wait", help="With a sidecar: follow the background run to its end."),
    as_json: bool = JSON_OUT,
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Re-fine-tune the active version on labelled production rows; promote it only if it is better.

    With a running sidecar the retrain runs in its background (monitoring goes on): this prints
    the run id; `retrain status ID` shows progress, `retrain cancel ID` stops it. Without one
    it runs here, in the foreground.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise typer.BadParameter("give --model to start a retrain (or a subcommand: status, cancel)",
                                 param_hint="--model")
    from monitor.retrain.guard import Guard
    from monitor.retrain.service import RetrainConfig
    from monitor.retrain.trainer import TrainConfig

    with _backend(config, db, registry_dir) as backend:
        cfg = RetrainConfig(
            train=TrainConfig(strategy=strategy, max_steps=max_steps,  # type: ignore[arg-type]
                              progress=progress and not backend.remote),
            production_share=production_share, min_labelled=min_labelled,
            guard=Guard(alpha=alpha, max_forgetting=max_forgetting,
                        require_oos_confidence_not_higher=oos_not_higher), timeout_s=timeout, shadow=shadow,
            shadow_min_rows=shadow_min_rows)
        outcome = backend.call("retrain_now", model=model, reason=reason, dry_run=dry_run,
                               config=cfg.to_dict())
        if backend.remote and not dry_run:
            if wait:
                outcome = _follow(backend, str(outcome["run_id"]), bar=progress and not as_json)
            elif not as_json:
                typer.echo(f"{model}: retrain {outcome['run_id']} started in the sidecar's background; "
                           f"follow it with `shiftwatch retrain status {outcome['run_id']}`")
                return
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
        return
    _print_outcome(model, outcome)


def _print_outcome(model: str, outcome: dict[str, Any]) -> None:
    if "decision" not in outcome:  # a background run's record
        final = outcome.get("outcome") or {}
        outcome = {**final, "decision": outcome.get("state"),
                   "reasons": final.get("reasons") or outcome.get("reasons") or
                   ([outcome["error"]] if outcome.get("error") else [])}
    typer.echo(f"{model}: {outcome['decision']} (candidate {outcome.get('candidate_version') or '-'}, "
               f"parent {outcome.get('parent_version') or '-'})")
    for r in outcome.get("reasons") or []:
        typer.echo(f"  - {r}")


_LIVE = ("queued", "running", "cancelling")


def _bar(run: dict[str, Any]) -> str:
    """One line: state, a 30-character bar, steps, phase, elapsed and ETA."""
    total, step = int(run.get("total_steps") or 0), int(run.get("step") or 0)
    filled = int(30 * step / total) if total else 0
    eta = run.get("eta_s")
    phase = f" phase {int(run.get('phase') or 0) + 1}/{run.get('phases')}" if run.get("phases") else ""
    return (f"{run['run_id'][:12]} {run.get('model_name', '')} {run.get('state', '?'):10} "
            f"[{'#' * filled}{'.' * (30 - filled)}] {step}/{total or '?'} steps{phase} "
            f"elapsed {float(run.get('elapsed_s') or 0):.0f}s"
            + (f" eta {float(eta):.0f}s" if eta is not None else ""))


def _follow(backend: Any, run_id: str, *, bar: bool, poll_s: float = 1.0) -> dict[str, Any]:
    """Poll a background run until it ends (a rich progress bar on a terminal)."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    run: dict[str, Any] = backend.call("retrain_status", run_id=run_id)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), disable=not bar) as prog:
        task = prog.add_task(f"retrain {run_id[:12]}", total=None)
        while run.get("state") in _LIVE:
            prog.update(task, total=run.get("total_steps") or None, completed=int(run.get("step") or 0),
                        description=f"retrain {run_id[:12]} {run.get('state')}"
                                    f" phase {int(run.get('phase') or 0) + 1}/{run.get('phases') or '?'}")
            time.sleep(poll_s)
            run = backend.call("retrain_status", run_id=run_id)
    return run


@retrain_app.command("status")
def retrain_status(
    run_id: str | None = typer.Argument(None, help="Run id (default: every run, newest first)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's runs."),
    watch: bool = typer.Option(False, "--watch", help="Follow RUN_ID with a progress bar until it ends."),
    as_json: bool = JSON_OUT, config: Path | None = CONFIG, db: Path | None = DB,
    registry_dir: Path | None = REGISTRY,
) -> None:
    """Progress of background retrains (steps done/total, phase, elapsed, ETA) and their outcome."""
    with _backend(config, db, registry_dir) as backend:
        if run_id is not None and watch:
            runs = [_follow(backend, run_id, bar=not as_json)]
        elif run_id is not None:
            runs = [backend.call("retrain_status", run_id=run_id)]
        else:
            runs = backend.call("retrain_list", model=model)
    if as_json:
        typer.echo(json.dumps(runs[0] if run_id is not None else runs, indent=2, default=str))
        return
    if not runs:
        typer.echo("no retrain runs")
    for run in runs:
        if run.get("state") in _LIVE:
            typer.echo(_bar(run))
        else:
            why = run.get("error") or "; ".join(run.get("reasons") or [])
            typer.echo(f"{run['run_id'][:12]} {run.get('model_name', '')} {run.get('state', '?'):10} "
                       f"candidate={run.get('candidate_version') or '-'} {why}".rstrip())


@retrain_app.command("cancel")
def retrain_cancel(
    run_id: str = typer.Argument(..., help="Run id of a background retrain."),
    config: Path | None = CONFIG, db: Path | None = DB, registry_dir: Path | None = REGISTRY,
) -> None:
    """Cancel a background retrain: it stops between two steps and is recorded as cancelled."""
    with _backend(config, db, registry_dir) as backend:
        run = backend.call("retrain_cancel", run_id=run_id)
    typer.echo(f"retrain {run_id}: {run.get('state')} (stops before its next training step)")


def register(app: typer.Typer) -> None:
    """Add the registry and retrain commands to the CLI."""
    app.add_typer(models_app, name="models")
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.add_typer(retrain_app, name="retrain")
