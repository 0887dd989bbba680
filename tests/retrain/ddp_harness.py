"""Run by torchrun from test_distributed.py: one rank of a data-parallel train() call.

Records what this rank saw (the rows of every step, the log rows and progress calls it
emitted) and its result, in ``<record dir>/rank<r>.json``; each rank gets its own
``out_dir`` so that a write by a non-zero rank would show.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from monitor.retrain import trainer as tr
from monitor.retrain.data import load_examples
from monitor.retrain.parallel import shard as real_shard


def main(model: str, train_file: str, val_file: str, config_file: str, record_dir: str) -> None:
    rank = int(os.environ["RANK"])
    seen: list[dict[str, Any]] = []

    def recording_shard(idx: np.ndarray, r: int, world: int) -> tuple[np.ndarray, np.ndarray]:
        rows, weight = real_shard(idx, r, world)
        seen.append({"batch": idx.tolist(), "rows": rows.tolist(), "weight": weight.tolist()})
        return rows, weight

    setattr(tr, "shard", recording_shard)  # noqa: B010 - the name the trainer calls
    logs: list[dict[str, Any]] = []
    progress: list[list[int]] = []
    cfg = tr.TrainConfig(**json.loads(Path(config_file).read_text(encoding="utf-8")))
    train, _ = load_examples(train_file)
    val, _ = load_examples(val_file)
    res = tr.train(model, train, val, labels=["label_0", "label_1"], config=cfg,
                   out_dir=Path(record_dir) / f"out-rank{rank}", log_sink=logs.extend,
                   on_step=lambda *p: progress.append(list(p)))
    record = {"rank": rank, "result": res.to_dict(), "seen": seen, "logs": logs,
              "progress": progress}
    (Path(record_dir) / f"rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:6])
