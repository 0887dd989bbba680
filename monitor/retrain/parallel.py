"""Data-parallel training support: the process group, batch sharding and the collectives.

:func:`train <monitor.retrain.trainer.train>` runs unchanged under ``torchrun``
(``torch.distributed.run``): when the environment says ``WORLD_SIZE > 1`` it joins
(or, if nobody did yet, initialises and later destroys) the default process group —
``nccl`` when training on CUDA, ``gloo`` on CPU — and trains data-parallel:

* every rank draws the *same* seeded global batch as a single process would, and keeps
  the rows ``batch[rank::world]`` (:func:`shard`, the strided split of
  :class:`torch.utils.data.DistributedSampler`, applied per global batch instead of per
  epoch, so that each step's global batch is exactly the single-process one);
* a rank whose share of a short last batch is empty gets one row of weight zero, since
  every rank must take part in DDP's gradient all-reduce;
* each rank's loss is ``sum(cross-entropy of its rows) × world / global batch rows``, so
  DDP's gradient *average* is the gradient of the global batch mean;
* every rank starts from the same seeded weights, then draws its own dropout masks
  (torch seeded with ``seed + rank``): a run is reproducible for a given seed and world
  size, and equals the single-process run only in distribution when the model uses
  dropout (the masks differ), within float tolerance when it does not;
* the logged loss is all-reduced; validation is sharded and gathered, so every rank
  computes the same macro-F1 from the same predictions and makes the same early-stopping
  and checkpoint decisions;
* only rank 0 writes: the checkpoint, the log sink, the progress callback and bar.

torch is imported inside functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.errors import RetrainError

__all__ = ["Parallel", "env_world_size", "process_group", "shard", "state_digest"]

log = logging.getLogger(__name__)


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset), as torchrun sets it."""
    raw = os.environ.get("WORLD_SIZE", "1") or "1"
    try:
        n = int(raw)
    except ValueError as exc:
        raise RetrainError(f"WORLD_SIZE must be an integer, got {raw!r}") from exc
    if n < 1:
        raise RetrainError(f"WORLD_SIZE must be at least 1, got {n}")
    return n


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RetrainError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True, slots=True)
class Parallel:
    """This process's place in a data-parallel run (world 1: a plain single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """True when more than one process trains."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes."""
        return self.rank == 0

    def all_sum(self, values: list[float], device: str) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (float64 on ``device``)."""
        if not self.active:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(x) for x in t.cpu().tolist()]

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def shard(idx: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's rows of a global batch and their loss weights: ``idx[rank::world]``, all of
    weight 1; an empty share becomes the batch's first row with weight 0."""
    part = idx[rank::world]
    if part.size:
        return part, np.ones(part.size, dtype=np.float32)
    return idx[:1], np.zeros(1, dtype=np.float32)


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes (ranks agree iff equal)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Parallel]:
    """The data-parallel context of this process, from torchrun's environment.

    ``WORLD_SIZE`` unset or 1: a single process (no group). Otherwise the default process
    group is used if one exists, else initialised from the environment (``env://``:
    ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``) with ``nccl`` on CUDA and
    ``gloo`` on CPU, and destroyed on exit.
    """
    world = env_world_size()
    if world == 1:
        yield Parallel()
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise RetrainError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    own = not dist.is_initialized()
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = device.startswith("cuda")
    if own:
        backend = "nccl" if cuda else "gloo"
        try:
            if cuda:
                torch.cuda.set_device(local_rank)
                dist.init_process_group(backend=backend, init_method="env://",
                                        device_id=torch.device("cuda", local_rank))
            else:
                dist.init_process_group(backend=backend, init_method="env://")
        except (RuntimeError, ValueError) as exc:
            raise RetrainError(f"cannot join the {backend} process group: {exc}") from exc
    rank, size = dist.get_rank(), dist.get_world_size()
    if size != world:
        raise RetrainError(f"process group has {size} ranks but WORLD_SIZE is {world}")
    ctx = Parallel(rank=rank, world=size, local_rank=local_rank, backend=str(dist.get_backend()))
    log.info("data-parallel training: rank %d of %d (%s)", rank, size, ctx.backend)
    try:
        yield ctx
    finally:
        if own:
            dist.destroy_process_group()
