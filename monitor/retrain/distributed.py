"""Entry point: the gradual-unfreezing trainer on N processes, launched by torchrun.

    torchrun --nproc_per_node=2 -m monitor.retrain.distributed \\
        --model DIR --train train.jsonl [--val val.jsonl] --out DIR \\
        [--labels neg,pos] [--config cfg.json] [--set key=value ...] \\
        [--log-file logs.jsonl] [--result result.json]

Every rank reads the same files and calls :func:`monitor.retrain.trainer.train`, which
joins the process group from torchrun's environment (gloo on CPU, NCCL on CUDA) and
trains data-parallel (:mod:`monitor.retrain.parallel`). ``--train``/``--val`` are JSON
Lines or CSV of ``text,label`` (a ``split`` column marks validation rows; without
``--val`` or such rows, 15 % of every class is held out, seeded). ``--config`` is a JSON
object of :class:`~monitor.retrain.trainer.TrainConfig` fields, ``--set`` overrides one
field (``--set max_steps=200 --set lr=5e-5``); ``batch_size`` is the *global* batch.
Only rank 0 writes: the checkpoint in ``--out``, the log rows (``--log-file``, JSON
Lines) and the result (``--result``, else stdout). Errors print one ``error: ...`` line
and exit 2. Without torchrun the module trains in one process, the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.errors import RetrainError, ShiftwatchError
from monitor.retrain.data import load_examples, split_original
from monitor.retrain.trainer import LogSink, TrainConfig, TrainResult, train

__all__ = ["main", "parse_config", "run"]


def _coerce(field: dataclasses.Field[Any], raw: str) -> Any:
    if raw.lower() in ("none", "null"):
        return None
    kind = str(field.type)
    if "bool" in kind:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise RetrainError(f"--set {field.name}: expected true or false, got {raw!r}")
    try:
        if "int" in kind and "float" not in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError as exc:
        raise RetrainError(f"--set {field.name}: {exc}") from exc
    return raw


def parse_config(config_file: str | Path | None, overrides: Sequence[str]) -> TrainConfig:
    """A :class:`TrainConfig` from a JSON object file and ``key=value`` overrides."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RetrainError(f"cannot read --config {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise RetrainError(f"--config {config_file}: expected a JSON object")
        values.update(loaded)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise RetrainError(f"--set {item!r}: expected key=value with key one of "
                               f"{', '.join(sorted(fields))}")
        values[key] = _coerce(fields[key], raw)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RetrainError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise RetrainError(f"bad training configuration: {exc}") from exc


def _file_sink(path: Path) -> LogSink:
    def sink(rows: list[dict[str, Any]]) -> None:
        with path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")

    return sink


def run(args: argparse.Namespace) -> TrainResult:
    """Train as the parsed arguments say (on every rank); rank 0 writes the outputs."""
    data, file_val = load_examples(args.train)
    val = load_examples(args.val)[0] if args.val is not None else file_val
    cfg = parse_config(args.config, args.set or [])
    train_rows, val_rows = split_original(data, val, seed=cfg.seed)
    labels = ([s.strip() for s in args.labels.split(",") if s.strip()] if args.labels
              else sorted(set(train_rows.labels) | set(val_rows.labels)))
    main_rank = int(os.environ.get("RANK", "0") or "0") == 0
    sink = None
    if args.log_file is not None and main_rank:
        log_path = Path(args.log_file)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("", encoding="utf-8")
        sink = _file_sink(log_path)
    result = train(args.model, train_rows, val_rows, labels=labels, config=cfg, out_dir=args.out,
                   log_sink=sink)
    if main_rank:
        text = json.dumps(result.to_dict(), indent=2)
        if args.result is not None:
            Path(args.result).write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
    return result


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m monitor.retrain.distributed",
                                 description="Gradual-unfreezing fine-tune; data-parallel under "
                                             "torchrun (only rank 0 writes).")
    ap.add_argument("--model", required=True, help="Hugging Face model directory to fine-tune")
    ap.add_argument("--train", required=True, help="JSONL or CSV of text,label")
    ap.add_argument("--val", default=None, help="validation JSONL or CSV (default: held out)")
    ap.add_argument("--out", required=True, help="directory for the best checkpoint (rank 0)")
    ap.add_argument("--labels", default=None, help="comma-separated class order (default: sorted)")
    ap.add_argument("--config", default=None, help="JSON object of TrainConfig fields")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one field")
    ap.add_argument("--log-file", default=None, help="JSON Lines of training log rows (rank 0)")
    ap.add_argument("--result", default=None, help="write the result JSON here (rank 0)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 on bad input or a failed run)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    try:
        run(args)
    except ShiftwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
