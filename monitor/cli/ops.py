"""Ops commands: ``shiftwatch check``, ``shiftwatch review export|import``, ``shiftwatch policy validate``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

__all__ = ["register"]

review_app = typer.Typer(help="Export the review queue for labelling; import the labels back.",
                         no_args_is_help=True)
policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)


def check(
    db: Path | None = typer.Option(None, "--db", help="DuckDB file (overrides the config)."),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (default: settings / shipped)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and record actions; perform none."),
    reports: bool = typer.Option(True, "--reports/--no-reports", help="Render HTML reports after."),
    retention: bool = typer.Option(False, "--retention", help="Also export+delete records past retention."),
    as_json: bool = typer.Option(False, "--json", help="Print the cycle summary as JSON."),
) -> None:
    """Run one drift → policy → actions → reports cycle now (cron-friendly; exit 1 if a job failed).

    With a running sidecar the cycle runs there (on its scheduler, never overlapping its own).
    """
    from monitor.cli.backend import open_backend

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with open_backend(config, db_path=db, policy_file=policy, dry_run=True if dry_run else None) as backend:
        summary = backend.call("check", dry_run=dry_run, reports=reports, retention=retention,
                               policy_file=str(policy) if policy else None)
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        for j in summary["jobs"]:
            err = f"  {j['error']}" if j["error"] else ""
            typer.echo(f"{j['job']:<32} {j['status']:<7} {j['duration_s']:8.2f}s{err}")
        for model, why in summary["skipped"].items():
            typer.echo(f"skipped {model}: {why}")
        for d in summary["decisions"]:
            typer.echo(f"decision {d['rule']} [{d['severity']}] {d['outcome']} for {d['model_name']} "
                       f"{d['model_version']} (run {d['run_id']})")
        for a in summary["actions"]:
            again = " (done before)" if a["reused"] else ""
            typer.echo(f"action {a['key']}: {a['status']}{again}")
        for r in summary.get("retrain_retry", []):
            ended = f": {r['ended']}" if r.get("ended") else ""
            run = r["started_run_id"]
            started = f"started again as {run}{ended}" if run else "still short"
            typer.echo(f"refused retrain {r['refused_run_id']} of {r['model_name']} "
                       f"({r['found']}/{r['needed']} labelled rows): {started}")
        typer.echo(f"{len(summary['drift_runs'])} drift run(s), {len(summary['decisions'])} decision(s)"
                   + (" [dry run]" if summary["dry_run"] else ""))
    if not summary["ok"]:
        raise typer.Exit(1)


@review_app.command("export")
def review_export(
    out: Path = typer.Argument(..., help="Output file: .csv or .jsonl."),
    db: Path = typer.Option(..., "--db", help="DuckDB file."),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    all_rows: bool = typer.Option(False, "--all", help="Every queued row, not only pending ones."),
) -> None:
    """Write queued rows for labelling (fill the empty 'label' column, then import)."""
    from monitor.cli.backend import open_backend

    with open_backend(db_path=db) as backend:
        n = backend.call("review_export", out=str(out), model=model, all_rows=all_rows)["rows"]
    typer.echo(f"exported {n} row(s) to {out}")


@review_app.command("import")
def review_import(
    file: Path = typer.Argument(..., help="A filled-in export (.csv or .jsonl)."),
    db: Path = typer.Option(..., "--db", help="DuckDB file."),
    source: str = typer.Option("review", "--source", help="Source tag stored with the labels."),
) -> None:
    """Store the labels of a filled-in review export as delayed ground truth."""
    from monitor.cli.backend import open_backend

    with open_backend(db_path=db) as backend:
        result = backend.call("review_import", file=str(file), source=source)
    typer.echo(result["summary"])


@policy_app.command("validate")
def policy_validate(file: Path = typer.Argument(..., help="Policy YAML file.")) -> None:
    """Check a policy file; errors name the line and the field."""
    from monitor.actions import load_policy

    policy = load_policy(file)
    typer.echo(f"ok: {file}: {len(policy.rules)} rule(s): " + ", ".join(r.name for r in policy.rules))


def register(app: typer.Typer) -> None:
    """Add ``check``, ``review`` and ``policy`` to the CLI."""
    app.command("check")(check)
    app.add_typer(review_app, name="review")
    app.add_typer(policy_app, name="policy")
