"""``shiftwatch fleet drift`` and ``shiftwatch fleet report``: the Parquet lake of a fleet."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer

from monitor.errors import ConfigError

__all__ = ["register"]

fleet_app = typer.Typer(help="Drift of a whole fleet from its Parquet lake (DESIGN §9).",
                        no_args_is_help=True)


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: expected a date YYYY-MM-DD, got '{value}'") from exc


def _run(lake: Path, reference: Path, engine: str, by: str | None, since: str | None,
         until: str | None, alpha: float, config_file: Path | None) -> list[dict[str, Any]]:
    from monitor.lake.fleet import LakeConfig, fleet_drift
    from monitor.persist.files import read_frame
    from monitor.settings import load_settings

    if by not in (None, "replica", "source"):
        raise ConfigError(f"--by: choose replica or source, got '{by}'")
    if not lake.is_dir():
        raise ConfigError(f"--lake {lake}: no such directory")
    settings = load_settings(config_file)
    _, frame = read_frame(reference)
    config = LakeConfig(n_features=settings.fleet_rff_features, rff_seed=settings.fleet_rff_seed,
                        sample_k=settings.fleet_sample_k)
    windows = fleet_drift(lake, frame, engine=engine, by=by,  # type: ignore[arg-type]
                          since=_date(since, "--since"), until=_date(until, "--until"),
                          alpha=alpha, config=config, spark_master=settings.spark_master)
    return [w.to_dict() for w in windows]


@fleet_app.command("drift")
def fleet_drift_cmd(
    lake: Path = typer.Option(..., "--lake", help="Lake root (predictions/ and partials/)."),
    reference: Path = typer.Option(..., "--reference", help="Reference records (Parquet/JSONL)."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (default) or spark."),
    by: str | None = typer.Option(None, "--by", help="Also one result per replica or source."),
    since: str | None = typer.Option(None, "--since", help="First UTC date (backfill)."),
    until: str | None = typer.Option(None, "--until", help="Last UTC date, inclusive."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise alpha of the Holm verdict."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per window, per line."),
    config_file: Path | None = typer.Option(None, "--config", help="Settings YAML."),
) -> None:
    """Drift of every model/version/hour of the lake, from merged partials (all rows)."""
    for res in _run(lake, reference, engine, by, since, until, alpha, config_file):
        if as_json:
            typer.echo(json.dumps(res))
            continue
        group = res.get("group")
        where = "fleet" if not group else ",".join(f"{k}={v}" for k, v in group.items())
        window = res["window"]
        sigs = ", ".join(f"{s['signal']}={'DRIFT' if s['drifted'] else s['status']}"
                         for s in res["signals"])
        typer.echo(f"{res['model_name']} {res['model_version']} {window['start']}"
                   f" {where}: {'DRIFT' if res['drifted'] else 'ok'}"
                   f" (n={res['n_current']}; {sigs})")


@fleet_app.command("report")
def fleet_report_cmd(
    lake: Path = typer.Option(..., "--lake", help="Lake root (predictions/ and partials/)."),
    reference: Path = typer.Option(..., "--reference", help="Reference records (Parquet/JSONL)."),
    out: Path = typer.Option(..., "--out", help="Directory for the offline fleet page."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (default) or spark."),
    by: str = typer.Option("replica", "--by", help="Rows of the heat map: replica or source."),
    since: str | None = typer.Option(None, "--since", help="First UTC date."),
    until: str | None = typer.Option(None, "--until", help="Last UTC date, inclusive."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise alpha of the Holm verdict."),
    config_file: Path | None = typer.Option(None, "--config", help="Settings YAML."),
) -> None:
    """Write an offline fleet page: groups x windows heat map linking to window reports."""
    from reports.fleet import write_fleet_page

    results = _run(lake, reference, engine, by, since, until, alpha, config_file)
    index = write_fleet_page(results, out, generated_at=datetime.now().astimezone())
    typer.echo(f"fleet page: {index} ({len(results)} window results)")


def register(app: typer.Typer) -> None:
    """Add ``fleet`` to the CLI."""
    app.add_typer(fleet_app, name="fleet")
