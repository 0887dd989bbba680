"""``shiftwatch demo``: the end-to-end story on real data, on the embedded DuckDB default."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

_HELP = """Run the whole shiftwatch story on real data, offline, in one process.

\b
1. fine-tunes the local all-MiniLM-L6-v2 into a sentiment classifier on UCI
   Amazon sentences, registers it as v1 and builds its reference set;
2. serves traffic through the instrumented classifier into DuckDB: Amazon
   (in-domain), then Yelp and IMDb sentences, and one window of lower-cased,
   tokenised SST-2 text, over simulated hours;
3. runs the scheduler's cycle after each window: drift check, policy,
   actions (a webhook to a local receiver the demo starts, review queue,
   retrain), reports; review-queue rows are labelled from the data set's
   true labels, standing in for a human reviewer;
4. the retrain action re-fine-tunes with gradual unfreezing on the labelled
   production rows and promotes or rejects the candidate, with reasons;
5. writes HTML reports and prints a summary table.

\b
Writes OUT/shiftwatch.duckdb, OUT/reports/index.html, OUT/models/ and
OUT/demo-policy.yaml (OUT is emptied of earlier demo output first).
No network; CPU is enough (about 10 minutes on 2 cores, --quick about 3).
"""


def register(app: typer.Typer) -> None:
    """Add ``shiftwatch demo`` to the CLI."""

    @app.command("demo", help=_HELP)
    def demo(
        quick: bool = typer.Option(False, "--quick",
                                   help="Same story with smaller windows and fewer training steps (CI)."),
        out: Path = typer.Option(Path("demo-out"), "--out", help="Output directory (DB, reports, models)."),
        data: Path | None = typer.Option(None, "--data",
                                         help="Shared data directory (default: $SHIFTWATCH_DATA_DIR "
                                              "or ../shared/data)."),
        seed: int = typer.Option(0, "--seed", help="Seed for data splits, training and drift tests."),
    ) -> None:
        from monitor.demo.story import DemoOptions, run_demo

        result = run_demo(DemoOptions(out=out, data=data, seed=seed, quick=quick))
        typer.echo(f"index: {result.index_path}")
