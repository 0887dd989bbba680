"""``shiftwatch drift`` and ``shiftwatch reference create|list``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from monitor.drift.names import signal_names
from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.drift.base import DriftResult
    from monitor.drift.suite import DriftReport

__all__ = ["register"]

DB_HELP = "DuckDB file (store mode)."


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _signals(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:
        raise ConfigError("--signals: give a comma-separated list of signal names")
    return names


def _options(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``signal.key=value`` pairs (values parsed as YAML scalars) into suite options."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        signal, dot, name = key.partition(".")
        if not sep or not dot or not signal or not name:
            raise ConfigError(f"--option '{item}': expected SIGNAL.KEY=VALUE")
        try:
            out.setdefault(signal.strip(), {})[name.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--option '{item}': invalid value") from exc
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}"


def _summary(sig: DriftResult) -> str:
    d = sig.details
    if sig.status != "ok":
        return str(d.get("reason") or d.get("error") or "")
    keys = {"embedding": ("per_class",), "class_distribution": ("js_distance", "psi", "unseen_labels"),
            "confidence": ("mean_drop", "wasserstein", "current_low_share"),
            "tokenizer": ("statistic_of",),
            "performance": ("current_accuracy", "estimated_accuracy", "reference_accuracy")}
    parts = []
    for k in keys.get(sig.signal, ()):
        if k not in d:
            continue
        v = d[k]
        if k == "per_class":
            shifted = [c for c, r in v.items() if r.get("p_value") is not None
                       and r["p_value"] < sig.threshold]
            parts.append(f"classes shifted: {', '.join(shifted) or 'none'}")
        elif isinstance(v, float):
            parts.append(f"{k}={v:.3g}")
        else:
            parts.append(f"{k}={v}")
    return "; ".join(parts)


def _print_table(title: str, report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    adjusted = {t["signal"]: t["adjusted_p_value"] for t in report.verdict.get("tests", [])}
    verdict = "[bold red]DRIFT[/]" if report.drifted else "[green]no drift[/]"
    if report.drifted:
        verdict += f": {report.diagnosis().title}"
    status = report.verdict.get("status", "ok")
    if status != "ok":
        verdict += f" [yellow]({status})[/]"
    method = "weighted Holm" if report.verdict.get("method") == "weighted_holm" else "Holm"
    table = Table(title=f"{title}: {verdict}  (n_reference={report.n_reference}, "
                        f"n_current={report.n_current}, {method} α={report.verdict['alpha']})")
    for col in ("signal", "method", "status", "statistic", "raw p", "threshold", "raw flag", "adjusted p",
                "corrected"):
        table.add_column(col, no_wrap=True)
    table.add_column("details", overflow="fold", min_width=30)
    for s in report.signals:
        corrected = report.corrected(s.signal)
        table.add_row(s.signal, s.method, s.status, _fmt(s.statistic), _fmt(s.p_value, 3),
                      _fmt(s.threshold, 3), "yes" if s.drifted else "no",
                      _fmt(adjusted.get(s.signal), 3),
                      "–" if corrected is None else ("DRIFTED" if corrected else "no"), _summary(s))
    console = Console()
    if not console.is_terminal:  # pipes and CI logs: rich would default to 80 columns
        console = Console(width=160)
    console.print(table)


def drift(
    reference: list[Path] | None = typer.Option(
        None, "--reference", help="Reference records (Parquet/JSONL); repeat to pair with --current."),
    current: list[Path] | None = typer.Option(
        None, "--current", help="Current-window records (Parquet/JSONL); repeatable."),
    signals: str | None = typer.Option(
        None, "--signals", help=f"Comma-separated: {signal_names(',')} (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per current window, per line."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise alpha of the Holm verdict."),
    option: list[str] | None = typer.Option(
        None, "--option", help="Per-signal setting SIGNAL.KEY=VALUE, e.g. embedding.method=centroid."),
    seed: int = typer.Option(0, "--seed", help="Seed of subsampling and permutations."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    reference_name: str | None = typer.Option(
        None, "--reference-name", help="Store mode: reference set (default: newest of the version)."),
    model: str | None = typer.Option(None, "--model", help="Store mode: model name."),
    model_version: str | None = typer.Option(None, "--model-version", help="Store mode: model version."),
    last: int | None = typer.Option(None, "--last", "--window",
                                    help="Store mode: window of the newest N rows."),
    start: datetime | None = typer.Option(None, "--start", help="Store mode: window start (UTC)."),
    end: datetime | None = typer.Option(None, "--end", help="Store mode: window end (UTC), exclusive."),
) -> None:
    """Test current windows against a reference. Exit 0 whether or not drift is found."""
    names = _signals(signals)
    opts = _options(option)
    outputs: list[tuple[str, dict[str, Any]]] = []
    if db is not None:
        if reference or current:
            raise ConfigError("--db mode reads windows from the store; drop --reference/--current")
        if not model:
            raise ConfigError("--db mode needs --model")
        if last is not None and (start is not None or end is not None):
            raise ConfigError("give --last or --start/--end, not both")
        from monitor.cli.backend import open_backend

        with open_backend(db_path=db) as backend:
            result = backend.call("drift_window", model=model, model_version=model_version,
                                  reference_name=reference_name, last=last, start=_utc(start),
                                  end=_utc(end), signals=names, alpha=alpha, options=opts, seed=seed)
        outputs.append((f"{model} run {result['run_id']}", result))  # JSON from the sidecar or the store
    else:
        from monitor.persist.files import compare_files

        for ref, cur, report in compare_files(reference or [], current or [], signals=names,
                                              alpha=alpha, options=opts, seed=seed):
            res = report.to_dict()
            if as_json:
                typer.echo(json.dumps(res))
            else:
                outputs.append((f"{cur} vs {ref}", res))
        if as_json:
            return
    from monitor.drift.suite import DriftReport

    for title, res in outputs:
        if as_json:
            typer.echo(json.dumps(res))
        else:
            _print_table(title, DriftReport.from_dict(res))


reference_app = typer.Typer(help="Named reference sets tied to a model version.", no_args_is_help=True)


@reference_app.command("create")
def reference_create(
    name: str = typer.Option(..., "--name", help="Name of the new reference set."),
    db: Path = typer.Option(..., "--db", help=DB_HELP),
    from_file: Path | None = typer.Option(None, "--from", help="Records file (Parquet/JSONL)."),
    model: str | None = typer.Option(None, "--model", help="Model name (default: from the records)."),
    model_version: str | None = typer.Option(None, "--model-version", help="Model version."),
    last: int | None = typer.Option(None, "--last", help="From the store: the newest N rows."),
    start: datetime | None = typer.Option(None, "--start", help="From the store: window start (UTC)."),
    end: datetime | None = typer.Option(None, "--end", help="From the store: window end (UTC)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing set of that name."),
) -> None:
    """Create a reference set from a records file or from a window of stored predictions."""
    from monitor.cli.backend import open_backend

    with open_backend(db_path=db) as backend:
        r = backend.call("reference_create", name=name, from_file=str(from_file) if from_file else None,
                         model=model, model_version=model_version, last=last, start=_utc(start),
                         end=_utc(end), replace=replace)
    typer.echo(f"reference set '{name}': {r['n_rows']} rows of {r['model_name']} {r['model_version']}")


@reference_app.command("list")
def reference_list(
    db: Path = typer.Option(..., "--db", help=DB_HELP),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per set, per line."),
) -> None:
    """List reference sets, newest first."""
    from monitor.cli.backend import open_backend

    with open_backend(db_path=db) as backend:
        rows = backend.call("reference_list", model=model)
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r, default=str))
        else:
            typer.echo(f"{r['name']}\t{r['model_name']}\t{r['model_version']}\t{r['n_rows']} rows\t"
                       f"{r['created_at']}\t{r['origin'] or ''}")


def register(app: typer.Typer) -> None:
    """Add ``drift`` and ``reference`` to the CLI."""
    app.command("drift")(drift)
    app.add_typer(reference_app, name="reference")
