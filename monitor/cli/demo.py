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
   retrain), reports. Labels come from the data sets' true labels, and the
   demo says so: review-queue rows are labelled from them (standing in for
   a human reviewer), as is a feedback share of each window;
4. the retrain action re-fine-tunes with gradual unfreezing on the labelled
   production rows and promotes or rejects the candidate, with reasons;
5. writes HTML reports and prints a summary table.

\b
Writes OUT/shiftwatch.duckdb, OUT/reports/index.html, OUT/models/,
OUT/review/ and OUT/demo-policy.yaml (earlier demo output in OUT is removed
first). No network; CPU is enough: the full story took about 3 minutes on 2
lightly loaded cores; the demo prints wall and CPU time per stage.
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
