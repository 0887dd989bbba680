"""Fine-tuning a BERT-family sequence classifier with gradual unfreezing.

The model is split into *units*, top to bottom: ``head`` (classifier, pooler
and anything else outside the encoder), ``layer.{L-1}`` … ``layer.0`` (the
encoder layers) and ``embeddings``.

Strategies (:class:`TrainConfig.strategy`):

- ``gradual`` — phase 0 trains the head only; phase ``p`` additionally
  unfreezes the next ``layers_per_phase`` units from the top (the encoder
  layers, then the embeddings). By default (``phases=None``) the number of
  phases is derived from the model so that the last phase trains *every*
  unit, embeddings included (ULMFiT: the last stage fine-tunes all layers):
  ``1 + ceil((L + 1) / layers_per_phase)`` for ``L`` encoder layers — 5
  phases for a 6-layer MiniLM with ``k = 2``. A fixed ``phases`` is honoured
  as given (extra phases keep everything unfrozen; too few leave the bottom
  frozen). Every phase gets a fresh AdamW optimizer and a fresh schedule:
  linear warm-up over ``warmup_ratio`` of its steps, then linear decay to zero.
- ``full`` — one phase, every unit trainable (plain fine-tuning).
- ``head`` — one phase, head only (a linear probe on frozen features).

Step budget of ``gradual`` (``max_steps``, or ``phases × epochs_per_phase``
epochs): with ``step_allocation="units"`` (default) each phase gets one step
and the rest is split in proportion to the number of units it trains
(head = 1 unit, each encoder layer and the embeddings 1 unit each), by
largest remainder with ties going to the later phase — so the steps grow with
the trainable depth and the final, all-unfrozen phase gets the largest share
(for MiniLM, k = 2: weights 1 : 3 : 5 : 7 : 8, i.e. 4/12/19/26/29 of 90
steps). The head-only phase only has to re-fit a linear layer on frozen
features, the phases that adapt representations have more parameters to
move. ``step_allocation="equal"`` splits the budget equally (the old rule).
See :func:`phase_weights` and :func:`allocate_steps`.

Learning rates are discriminative: the head gets ``lr * head_lr_scale``
(default scale 1), encoder layer ``i`` gets ``lr * layer_decay ** (L - i)``
and the embeddings ``lr * layer_decay ** (L + 1)``. Biases and LayerNorm
weights get no weight decay. Gradients are clipped to ``max_grad_norm``. Validation macro-F1 is
measured before training (logged only), every ``eval_every`` steps and at the
end of each phase; the best trained state is kept (in memory) and restored at
the end. "Best" is decided by :class:`monitor.retrain.selection.CheckpointSelector`:
the latest checkpoint whose macro-F1 is not significantly below the highest
one (one-sided paired permutation test on the validation rows at
``selection_alpha``; a small validation slice cannot tell such checkpoints
apart, and the longest-trained one is the most adapted). Early stopping:
``patience`` evaluations in a row significantly below the best end the current
phase (so a degrading head-only phase moves on to unfreezing instead of
stopping everything); in the last phase they end training.
``selection_alpha=1`` gives the classic highest-score rule.

Batches are padded dynamically (to the longest sequence of the batch). On
CUDA, autocast runs in bf16 where supported, else fp16 with a GradScaler; on
CPU training is fp32. Seeds are fixed. A log row (lr, train loss, gradient
norm; validation loss and macro-F1 at evaluation steps) goes to ``log_sink``
every ``log_every`` steps — :func:`store_log_sink` writes them into DuckDB's
``training_logs``; a worker process sends them to its parent instead.

Under ``torchrun`` (``WORLD_SIZE > 1``) the same function trains data-parallel with
DDP: the same global batches, sharded over the ranks, gathered validation, and only
rank 0 writes (:mod:`monitor.retrain.parallel`, docs/distributed.md).

torch and transformers are imported inside functions.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from monitor.drift.performance import macro_f1
from monitor.errors import RetrainCancelled, RetrainError
from monitor.retrain.parallel import Parallel, env_world_size, process_group, shard, state_digest
from monitor.retrain.selection import CheckpointSelector

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from monitor.store import Store

__all__ = [
    "Examples",
    "LogSink",
    "PhaseSummary",
    "Precision",
    "StepCallback",
    "TrainConfig",
    "TrainResult",
    "allocate_steps",
    "head_lr_ratios",
    "layer_lrs",
    "load_classifier",
    "measure_step_seconds",
    "model_units",
    "param_groups",
    "phase_units",
    "phase_weights",
    "plan_steps",
    "resolve_device",
    "resolve_phases",
    "select_precision",
    "set_trainable",
    "store_log_sink",
    "train",
    "warmup_decay",
]

log = logging.getLogger(__name__)

Strategy = Literal["gradual", "full", "head"]
StepAllocation = Literal["units", "equal"]
LogSink = Callable[[list[dict[str, Any]]], None]
#: ``on_step(step, total_steps, phase, n_phases)``: called before the first step (step 0) and after
#: every optimizer step; what a progress bar, a Prometheus gauge or a worker's parent listens to
StepCallback = Callable[[int, int, int, int], None]
HEAD = "head"
EMBEDDINGS = "embeddings"


@dataclass(frozen=True, slots=True)
class Examples:
    """Texts with string labels (what the trainer consumes; picklable for the worker)."""

    texts: list[str]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise RetrainError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of one training run (see the module docstring).

    ``phases=None`` (default) derives the phase count from the model so the
    last phase trains everything; ``step_allocation`` splits the budget over
    the phases; ``head_lr_scale`` multiplies the head's learning rate
    (``lr`` is the top of the layer-wise decay either way);
    ``epochs_per_phase`` is the mean number of epochs per phase when no
    ``max_steps`` is given; ``threads`` is the CPU intra-op thread count
    during training, fixed so a seed gives the same weights on any machine
    (``None`` keeps the process's).
    """

    strategy: Strategy = "gradual"
    phases: int | None = None
    layers_per_phase: int = 2
    epochs_per_phase: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 1e-4
    layer_decay: float = 0.95
    head_lr_scale: float = 1.0
    step_allocation: StepAllocation = "units"
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int = 50
    log_every: int = 10
    patience: int = 3
    selection_alpha: float = 0.05
    seed: int = 0
    max_length: int = 128
    truncation_side: Literal["right", "left"] = "right"
    device: str | None = None
    amp: bool = True
    progress: bool = True
    threads: int | None = 2

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise RetrainError(f"threads must be >= 1 or None, got {self.threads}")
        if self.strategy not in ("gradual", "full", "head"):
            raise RetrainError(f"strategy must be gradual, full or head, got {self.strategy!r}")
        if (self.phases is not None and self.phases < 1) or self.layers_per_phase < 1:
            raise RetrainError("phases and layers_per_phase must be at least 1")
        if not 0.0 < self.layer_decay <= 1.0:
            raise RetrainError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if not self.head_lr_scale > 0.0:
            raise RetrainError(f"head_lr_scale must be positive, got {self.head_lr_scale}")
        if self.step_allocation not in ("units", "equal"):
            raise RetrainError(f"step_allocation must be units or equal, got {self.step_allocation!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise RetrainError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_steps is not None and self.max_steps < (self.n_phases or 1):
            raise RetrainError(f"max_steps={self.max_steps} is less than one step per phase")
        if not 0.0 < self.selection_alpha <= 1.0:
            raise RetrainError(f"selection_alpha must be in (0, 1], got {self.selection_alpha}")
        if self.batch_size < 1 or self.eval_every < 1 or self.log_every < 1 or self.patience < 1:
            raise RetrainError("batch_size, eval_every, log_every and patience must be at least 1")

    @property
    def n_phases(self) -> int | None:
        """Phases run: 1 for full / head, ``phases`` for gradual (None: derived from the model)."""
        return self.phases if self.strategy == "gradual" else 1

    def phase_count(self, n_layers: int) -> int:
        """Phases run on a model with ``n_layers`` encoder layers (see :func:`resolve_phases`)."""
        if self.strategy != "gradual":
            return 1
        return resolve_phases(n_layers, self.layers_per_phase, self.phases)

    def step_budget(self, n_train: int, n_layers: int) -> int:
        """Steps a run takes on ``n_train`` rows: ``max_steps``, else ``phases × epochs_per_phase`` epochs."""
        if self.max_steps is not None:
            return self.max_steps
        steps_per_epoch = math.ceil(n_train / self.batch_size)
        return max(1, math.ceil(steps_per_epoch * self.epochs_per_phase)) * self.phase_count(n_layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """What one phase trained and how it went."""

    phase: int
    units: tuple[str, ...]
    steps: int
    n_trainable: int
    best_val_macro_f1: float
    wall_s: float
    stopped_early: bool


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train` (picklable: it crosses the worker boundary)."""

    out_dir: str | None
    labels: tuple[str, ...]
    initial_val_macro_f1: float
    best_val_macro_f1: float
    best_step: int
    steps: int
    phases: tuple[PhaseSummary, ...]
    wall_s: float
    seconds_per_epoch: float
    device: str
    precision: str
    lr_history: tuple[float, ...] = field(default=(), repr=False)
    phase_starts: tuple[int, ...] = ()
    planned_steps: tuple[int, ...] = ()
    #: processes that trained together (1: a single process; >1: data-parallel under torchrun)
    world_size: int = 1
    #: :func:`monitor.retrain.parallel.state_digest` of the returned weights (every rank's agree)
    weights_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-step lr history)."""
        d = asdict(self)
        d.pop("lr_history")
        return d


# -- device and precision ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Precision:
    """Autocast settings: ``dtype`` None means plain fp32."""

    device_type: str
    dtype: str | None  # "bfloat16" | "float16" | None
    use_scaler: bool

    @property
    def name(self) -> str:
        """``bf16``, ``fp16`` or ``fp32``."""
        return {"bfloat16": "bf16", "float16": "fp16"}.get(self.dtype or "", "fp32")


def resolve_device(requested: str | None = None, *, cuda_available: bool | None = None) -> str:
    """``cuda`` when asked for (or auto) and available, else ``cpu`` (with a log line on fallback)."""
    if cuda_available is None:
        import torch

        cuda_available = bool(torch.cuda.is_available())
    req = (requested or "auto").lower()
    if req == "auto":
        return "cuda" if cuda_available else "cpu"
    if req.startswith("cuda"):
        if cuda_available:
            return req
        log.warning("CUDA requested but not available; training on CPU")
        return "cpu"
    if req != "cpu":
        raise RetrainError(f"unknown device {requested!r} (auto, cpu or cuda[:N])")
    return "cpu"


def select_precision(device: str, *, amp: bool = True, bf16_supported: bool | None = None) -> Precision:
    """bf16 autocast on CUDA where supported, else fp16 + GradScaler; fp32 on CPU or without AMP."""
    device_type = device.split(":")[0]
    if device_type != "cuda" or not amp:
        return Precision(device_type, None, False)
    if bf16_supported is None:
        import torch

        bf16_supported = bool(torch.cuda.is_bf16_supported())
    if bf16_supported:
        return Precision(device_type, "bfloat16", False)
    return Precision(device_type, "float16", True)


# -- units, trainability, optimizer groups ---------------------------------------------
def _encoder_layers(model: Any) -> Sequence[Any]:
    base = getattr(model, "base_model", model)
    for path in (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"), ("layers",)):
        obj = base
        for attr in path:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None:
            return list(obj)
    raise RetrainError(f"cannot find the encoder layers of {type(model).__name__}")


def model_units(model: Any) -> dict[str, str]:
    """Parameter name → unit (``head``, ``layer.i``, ``embeddings``)."""
    base = getattr(model, "base_model", model)
    owner: dict[int, str] = {}
    emb = getattr(base, "embeddings", None)
    if emb is not None:
        for p in emb.parameters():
            owner[id(p)] = EMBEDDINGS
    for i, layer in enumerate(_encoder_layers(model)):
        for p in layer.parameters():
            owner[id(p)] = f"layer.{i}"
    return {name: owner.get(id(p), HEAD) for name, p in model.named_parameters()}


def _unit_order(n_layers: int) -> list[str]:
    """Units below the head, top to bottom: the unfreezing order."""
    return [f"layer.{i}" for i in range(n_layers - 1, -1, -1)] + [EMBEDDINGS]


def resolve_phases(n_layers: int, layers_per_phase: int, phases: int | None = None) -> int:
    """Gradual phases: ``phases`` if given, else ``1 + ceil((L + 1) / k)`` — the last one trains all units."""
    if phases is not None:
        return phases
    return 1 + math.ceil((n_layers + 1) / layers_per_phase)


def phase_units(strategy: Strategy, phase: int, n_layers: int, layers_per_phase: int) -> tuple[str, ...]:
    """The units trainable in ``phase`` (head first, then top-down)."""
    order = _unit_order(n_layers)
    if strategy == "head":
        return (HEAD,)
    if strategy == "full":
        return (HEAD, *order)
    return (HEAD, *order[: phase * layers_per_phase])


def phase_weights(strategy: Strategy, n_phases: int, n_layers: int, layers_per_phase: int,
                  allocation: StepAllocation = "units") -> list[int]:
    """Relative step shares of the phases: units trained per phase (``units``) or all 1 (``equal``)."""
    if allocation == "equal":
        return [1] * n_phases
    return [len(phase_units(strategy, p, n_layers, layers_per_phase)) for p in range(n_phases)]


def allocate_steps(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` steps over phases: one each, the rest in proportion to ``weights``.

    Largest-remainder rounding, ties going to the later phase; the result
    sums to ``total`` exactly and every phase gets at least one step.
    """
    n = len(weights)
    if n == 0 or total < n:
        raise RetrainError(f"cannot give {n} phases at least one step each out of {total}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise RetrainError(f"phase weights must be non-negative and not all zero, got {list(weights)}")
    rest, wsum = total - n, float(sum(weights))
    ideal = [rest * w / wsum for w in weights]
    out = [1 + math.floor(x) for x in ideal]
    left = total - sum(out)
    by_remainder = sorted(range(n), key=lambda p: (ideal[p] - math.floor(ideal[p]), p), reverse=True)
    for p in by_remainder[:left]:
        out[p] += 1
    return out


def layer_lrs(n_layers: int, lr: float, decay: float, *, head_scale: float = 1.0) -> dict[str, float]:
    """Discriminative LRs: head ``lr*head_scale``, layer i ``lr*decay**(L-i)``, embeddings lowest."""
    out = {HEAD: lr * head_scale}
    for i in range(n_layers):
        out[f"layer.{i}"] = lr * decay ** (n_layers - i)
    out[EMBEDDINGS] = lr * decay ** (n_layers + 1)
    return out


def head_lr_ratios(groups: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each group's lr divided by the head's (for logs and tests)."""
    heads = [float(g["lr"]) for g in groups if str(g["name"]).startswith(f"{HEAD}/")]
    head = heads[0] if heads else max(float(g["lr"]) for g in groups)
    return {str(g["name"]): float(g["lr"]) / head for g in groups}


def _no_decay(name: str) -> bool:
    low = name.lower()
    return name.endswith(".bias") or "layernorm" in low or "layer_norm" in low or low.endswith("ln.weight")


def set_trainable(model: Any, units: Sequence[str]) -> int:
    """Set ``requires_grad`` exactly for the parameters of ``units``; return how many are trainable."""
    wanted = set(units)
    unit_of = model_units(model)
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad_(unit_of[name] in wanted)
        n += int(p.requires_grad)
    return n


def param_groups(model: Any, lrs: Mapping[str, float], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: one per (unit, decay / no-decay)."""
    unit_of = model_units(model)
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        unit, nd = unit_of[name], _no_decay(name)
        key = (unit, nd)
        if key not in groups:
            groups[key] = {"name": f"{unit}/{'no_decay' if nd else 'decay'}", "params": [],
                           "param_names": [], "lr": lrs[unit],
                           "weight_decay": 0.0 if nd else weight_decay}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def warmup_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``ceil(ratio*total)`` steps, then linear decay towards 0.

    Step ``warmup - 1`` reaches the peak; the decay then falls by equal steps
    so that the step after the last one would be at zero.
    """
    warmup = max(1, math.ceil(warmup_ratio * total_steps)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / (total_steps - warmup + 1))

    return factor


# -- data -----------------------------------------------------------------------------
def _label_ids(examples: Examples, labels: Sequence[str]) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({lab for lab in examples.labels if lab not in index})
    if unknown:
        raise RetrainError(f"labels {unknown[:5]} are not among the model's labels {list(labels)}")
    return np.array([index[lab] for lab in examples.labels], dtype=np.int64)


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_attention_mask=False,
                    return_token_type_ids=False)
    return [list(x) for x in enc["input_ids"]]


def _collate(ids: Sequence[Sequence[int]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Dynamic padding: pad to the longest sequence of the batch."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless shuffled mini-batches (epoch after epoch; the last partial batch is kept)."""
    while True:
        perm = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield perm[start:start + batch_size]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def load_classifier(model_dir: str | Path, labels: Sequence[str]) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a local directory as a classifier over ``labels``.

    A bare encoder (e.g. MiniLM) or a classifier with a different number of
    labels gets a fresh, seeded classification head; a classifier with the
    same number of labels keeps its head and gets the label names.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(model_dir)
    if not path.is_dir():
        raise RetrainError(f"model directory not found: {path}")
    id2label = {i: lab for i, lab in enumerate(labels)}
    label2id = {lab: i for i, lab in enumerate(labels)}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is expected for a base encoder
    try:
        config = AutoConfig.from_pretrained(str(path), num_labels=len(labels), id2label=id2label,
                                            label2id=label2id)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), config=config, ignore_mismatched_sizes=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise RetrainError(f"cannot load a classifier from {path}: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def plan_steps(model_dir: str | Path, n_train: int, config: TrainConfig) -> list[int]:
    """The steps per phase :func:`train` would run on ``n_train`` rows (reads only the model config)."""
    from transformers import AutoConfig

    try:
        n_layers = int(AutoConfig.from_pretrained(str(model_dir)).num_hidden_layers)
    except (OSError, ValueError, AttributeError) as exc:
        raise RetrainError(f"cannot read the model config in {model_dir}: {exc}") from exc
    n_phases = config.phase_count(n_layers)
    weights = phase_weights(config.strategy, n_phases, n_layers, config.layers_per_phase,
                            config.step_allocation)
    return allocate_steps(config.step_budget(n_train, n_layers), weights)


def _prepare(model_dir: str | Path, labels: Sequence[str], cfg: TrainConfig,
             par: Parallel | None = None) -> tuple[Any, Any, str, Precision, int]:
    """Seed, pick device and precision, load the classifier in train mode: (model, tokenizer,
    device, precision, pad id) — the same start for training and for timing a step. A
    data-parallel rank on CUDA takes the GPU of its local rank."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if par is not None and par.active and device.startswith("cuda"):
        device = f"cuda:{par.local_rank}"
    precision = select_precision(device, amp=cfg.amp)
    model, tokenizer = load_classifier(model_dir, labels)
    tokenizer.truncation_side = cfg.truncation_side
    model.to(device)
    model.train()
    if par is not None and par.active:  # same start on every rank, then a dropout stream per rank
        seed_everything(cfg.seed + par.rank)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    return model, tokenizer, device, precision, pad_id


def measure_step_seconds(model_dir: str | Path, data: Examples, *, labels: Sequence[str],
                         config: TrainConfig, n_steps: int = 2) -> float:
    """Mean wall time of ``n_steps`` forward/backward/AdamW steps on real batches of ``data``.

    Every unit is trainable (the cost of the last, fully unfrozen phase, an upper bound for
    the earlier ones); one untimed step warms up first. Nothing is saved.
    """
    import torch

    if len(data) == 0:
        raise RetrainError("cannot time a training step without training rows")
    model, tokenizer, device, precision, pad_id = _prepare(model_dir, labels, config)
    ids = _tokenize(tokenizer, data.texts, config.max_length)
    y = _label_ids(data, labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    batches = _batches(len(ids), config.batch_size, np.random.default_rng(config.seed))
    times: list[float] = []
    for i in range(n_steps + 1):
        idx = next(batches)
        t0 = time.perf_counter()
        batch = _collate([ids[j] for j in idx], pad_id, device)
        with _autocast(precision):
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor(y[idx], device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def store_log_sink(store: Store, train_run_id: str, model_name: str) -> LogSink:
    """A log sink that inserts rows into ``training_logs`` set-wise."""
    import pyarrow as pa

    def sink(rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = pa.table({
            "train_run_id": [train_run_id] * len(rows),
            "model_name": [model_name] * len(rows),
            "step": pa.array([r["step"] for r in rows], pa.int32()),
            "phase": pa.array([r["phase"] for r in rows], pa.int32()),
            "lr": pa.array([r.get("lr") for r in rows], pa.float64()),
            "train_loss": pa.array([r.get("train_loss") for r in rows], pa.float64()),
            "val_loss": pa.array([r.get("val_loss") for r in rows], pa.float64()),
            "val_macro_f1": pa.array([r.get("val_macro_f1") for r in rows], pa.float64()),
            "grad_norm": pa.array([r.get("grad_norm") for r in rows], pa.float64()),
        })
        with store.registered("_training_logs", table):
            store.execute("retrain_insert_training_logs")

    return sink


# -- training -------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, model: Any, ids: list[list[int]], y: np.ndarray, *, pad_id: int, device: str,
                 precision: Precision, batch_size: int, n_classes: int,
                 parallel: Parallel | None = None) -> None:
        self.model, self.ids, self.y = model, ids, y
        self.pad_id, self.device, self.precision = pad_id, device, precision
        self.batch_size, self.n_classes = batch_size, n_classes
        self.parallel = parallel or Parallel()

    def __call__(self) -> tuple[float, float, np.ndarray]:
        """(mean loss, macro-F1, predicted class ids) on the validation set; data-parallel, each
        rank scores rows ``rank::world`` and every rank gets everyone's predictions."""
        import torch

        par = self.parallel
        ids, y = self.ids, self.y
        rows = np.arange(par.rank, len(self.ids), par.world) if par.active else None
        if rows is not None:
            ids, y = [self.ids[j] for j in rows], self.y[rows]
        self.model.eval()
        losses: list[float] = []
        preds: list[np.ndarray] = []
        with torch.inference_mode():
            for s in range(0, len(ids), self.batch_size):
                batch = _collate(ids[s:s + self.batch_size], self.pad_id, self.device)
                target = torch.as_tensor(y[s:s + self.batch_size], device=self.device)
                with _autocast(self.precision):
                    logits = self.model(**batch).logits.float()
                losses.append(float(torch.nn.functional.cross_entropy(logits, target, reduction="sum")))
                preds.append(logits.argmax(-1).cpu().numpy())
        self.model.train()
        n = max(len(self.ids), 1)
        pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
        if rows is None:
            return sum(losses) / n, macro_f1(self.y, pred, self.n_classes), pred
        full = np.zeros(len(self.ids), dtype=np.int64)
        total = 0.0
        for r_rows, r_pred, r_loss in par.all_gather((rows, pred, sum(losses))):
            full[r_rows] = r_pred
            total += r_loss
        return total / n, macro_f1(self.y, full, self.n_classes), full


def _autocast(precision: Precision) -> Any:
    import contextlib

    import torch

    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=precision.device_type, dtype=getattr(torch, precision.dtype))


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(
    model_dir: str | Path,
    train_data: Examples,
    val_data: Examples,
    *,
    labels: Sequence[str],
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    log_sink: LogSink | None = None,
    on_step: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune the model in ``model_dir`` and save the best checkpoint to ``out_dir``.

    ``on_step`` reports progress (see :data:`StepCallback`); ``should_stop`` is polled between
    steps, and a true answer raises :class:`~monitor.errors.RetrainCancelled` before anything
    is saved.

    ``model_dir`` is a Hugging Face directory: a fine-tuned classifier
    (re-fine-tune) or a bare encoder such as MiniLM (initial fine-tune with
    a fresh head; use strategy ``full``, or ``gradual`` with enough phases).
    ``labels`` fixes the class order. Raises :class:`RetrainError` on bad
    input or a failed run.

    Reproducible: everything is seeded from ``config.seed``, torch runs with
    deterministic algorithms, and on CPU with ``config.threads`` intra-op
    threads whatever the process had (a CPU kernel's reduction order depends
    on its thread count, so the same seed on a 2- and a 16-core machine gives
    the same weights). Both settings are restored afterwards.

    Launched by ``torchrun`` (``WORLD_SIZE > 1``), every rank calls this with the same
    arguments and trains data-parallel (:mod:`monitor.retrain.parallel`): ``batch_size``
    is the *global* batch, only rank 0 saves, logs and reports progress, ``should_stop``
    must be given on every rank or on none, and every rank returns the same result
    (``out_dir`` is where rank 0 saved).
    """
    import torch

    cfg = config or TrainConfig()
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    group_device = resolve_device(cfg.device) if env_world_size() > 1 else "cpu"
    try:
        with process_group(group_device) as par:
            return _train(model_dir, train_data, val_data, labels=labels, cfg=cfg, out_dir=out_dir,
                          log_sink=log_sink, on_step=on_step, should_stop=should_stop, par=par)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _data_parallel(model: Any, par: Parallel, device: str) -> Any:
    """``model`` itself, or wrapped in DDP over its trainable parameters (a new wrapper per
    phase: DDP registers its gradient hooks for the parameters trainable when it is built)."""
    if not par.active:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    # buffers are synced once at construction and never change (position ids): no per-forward sync
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def _train(model_dir: str | Path, train_data: Examples, val_data: Examples, *, labels: Sequence[str],
           cfg: TrainConfig, out_dir: str | Path | None, log_sink: LogSink | None,
           on_step: StepCallback | None, should_stop: Callable[[], bool] | None,
           par: Parallel | None = None) -> TrainResult:
    import torch

    par = par or Parallel()
    if not par.is_main:  # only rank 0 writes logs and reports progress
        log_sink, on_step = None, None
    labels = [str(x) for x in labels]
    if len(train_data) == 0 or len(val_data) == 0:
        raise RetrainError(f"need training and validation rows, got {len(train_data)} and {len(val_data)}")
    if len(labels) < 2:
        raise RetrainError(f"a classifier needs at least two labels, got {labels}")
    y_train, y_val = _label_ids(train_data, labels), _label_ids(val_data, labels)
    model, tokenizer, device, precision, pad_id = _prepare(model_dir, labels, cfg, par)
    train_ids = _tokenize(tokenizer, train_data.texts, cfg.max_length)
    evaluate = _Evaluator(model, _tokenize(tokenizer, val_data.texts, cfg.max_length), y_val,
                          pad_id=pad_id, device=device, precision=precision,
                          batch_size=cfg.eval_batch_size, n_classes=len(labels), parallel=par)
    n_layers = len(_encoder_layers(model))
    lrs = layer_lrs(n_layers, cfg.lr, cfg.layer_decay, head_scale=cfg.head_lr_scale)
    steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    n_phases = cfg.phase_count(n_layers)
    weights = phase_weights(cfg.strategy, n_phases, n_layers, cfg.layers_per_phase, cfg.step_allocation)
    plan = allocate_steps(cfg.step_budget(len(train_ids), n_layers), weights)
    log.info("%s: %d phases, steps %s", cfg.strategy, n_phases, plan)
    total_steps = sum(plan)
    scaler = torch.amp.GradScaler(precision.device_type, enabled=precision.use_scaler) \
        if precision.use_scaler else None

    rng = np.random.default_rng(cfg.seed)
    batches = _batches(len(train_ids), cfg.batch_size, rng)
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if log_sink is not None and pending:
            log_sink(list(pending))
        pending.clear()

    t_start = time.perf_counter()
    val_loss, initial_f1, _ = evaluate()
    # the untrained state is logged but not eligible: a retrain that cannot beat it yields a
    # candidate the promotion guard rejects, instead of silently returning the input
    selector = CheckpointSelector(y_val, len(labels), alpha=cfg.selection_alpha, seed=cfg.seed)
    best_state = _snapshot(model)
    pending.append({"step": 0, "phase": 0, "lr": 0.0, "train_loss": None, "val_loss": val_loss,
                    "val_macro_f1": initial_f1, "grad_norm": None})
    step = 0
    lr_history: list[float] = []
    phase_starts: list[int] = []
    summaries: list[PhaseSummary] = []
    train_time = 0.0
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(plan), desc=f"train[{cfg.strategy}]", disable=not (cfg.progress and par.is_main),
               leave=False)
    if on_step is not None:
        on_step(0, total_steps, 0, len(plan))
    try:
        for phase, n_steps in enumerate(plan):
            units = phase_units(cfg.strategy, phase, n_layers, cfg.layers_per_phase)
            n_trainable = set_trainable(model, units)
            groups = param_groups(model, lrs, cfg.weight_decay)
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=False)
            runner = None  # the previous phase's DDP wrapper goes before the next is built
            runner = _data_parallel(model, par, device)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_decay(n_steps, cfg.warmup_ratio))
            params = [p for g in groups for p in g["params"]]
            phase_starts.append(step)
            phase_best, bad_evals, stopped = -1.0, 0, False
            t_phase = time.perf_counter()
            loss_acc: list[float] = []
            norm_acc: list[float] = []
            for i in range(n_steps):
                stop = should_stop is not None and should_stop()
                if par.active:  # every rank stops together
                    stop = par.all_sum([float(stop)], device)[0] > 0
                if stop:
                    raise RetrainCancelled(f"training cancelled after step {step} of {total_steps}")
                idx = next(batches)
                rows, weight = shard(idx, par.rank, par.world) if par.active else (idx, None)
                batch = _collate([train_ids[j] for j in rows], pad_id, device)
                target = torch.as_tensor(y_train[rows], device=device)
                lr_now = max(float(g["lr"]) for g in optimizer.param_groups)
                lr_history.append(lr_now)
                with _autocast(precision):
                    logits = runner(**batch).logits
                if weight is None:
                    loss = torch.nn.functional.cross_entropy(logits.float(), target)
                    if not torch.isfinite(loss):
                        raise RetrainError(
                            f"training diverged at step {step + 1} (loss {float(loss.detach())})")
                    step_loss = None
                else:
                    # sum over this rank's rows x world / global rows: DDP's gradient average is
                    # then the gradient of the global batch mean
                    ce = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
                    local = (ce * torch.as_tensor(weight, device=device)).sum()
                    loss = local * (par.world / len(idx))
                    step_loss = par.all_sum([float(local.detach())], device)[0] / len(idx)
                    if not math.isfinite(step_loss):
                        raise RetrainError(f"training diverged at step {step + 1} (loss {step_loss})")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                    scaler.unscale_(optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()  # type: ignore[no-untyped-call]
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                scheduler.step()
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step, total_steps, phase, len(plan))
                loss_acc.append(float(loss.detach()) if step_loss is None else step_loss)
                norm_acc.append(float(norm))
                row: dict[str, Any] | None = None
                if step % cfg.log_every == 0:
                    row = {"step": step, "phase": phase, "lr": lr_now,
                           "train_loss": float(np.mean(loss_acc)), "val_loss": None,
                           "val_macro_f1": None, "grad_norm": float(np.mean(norm_acc))}
                    loss_acc.clear()
                    norm_acc.clear()
                if step % cfg.eval_every == 0 or i == n_steps - 1:
                    val_loss, f1, pred = evaluate()
                    row = row or {"step": step, "phase": phase, "lr": lr_now, "train_loss": None,
                                  "grad_norm": None}
                    row.update(val_loss=val_loss, val_macro_f1=f1)
                    bar.set_postfix(loss=f"{val_loss:.3f}", f1=f"{f1:.3f}", phase=phase)
                    verdict = selector.offer(step, f1, pred)
                    if verdict.keep:
                        best_state = _snapshot(model)
                    phase_best = max(phase_best, f1)
                    bad_evals = bad_evals + 1 if verdict.worse else 0
                if row is not None:
                    pending.append(row)
                if row is not None and row.get("val_macro_f1") is not None:
                    flush()
                if bad_evals >= cfg.patience:
                    stopped = True
                    log.info("phase %d: %d evaluations significantly below the best; ending the phase",
                             phase, bad_evals)
                    break
            wall = time.perf_counter() - t_phase
            train_time += wall
            summaries.append(PhaseSummary(phase, units, step - phase_starts[-1], n_trainable,
                                          phase_best, wall, stopped))
            if stopped and phase == len(plan) - 1:
                break
        flush()
    except RetrainError:
        raise
    except (RuntimeError, ValueError) as exc:
        raise RetrainError(f"training failed at step {step}: {exc}") from exc
    finally:
        bar.close()
    model.load_state_dict(best_state)
    digest = state_digest(model.state_dict())
    if par.active and len(set(par.all_gather(digest))) != 1:
        raise RetrainError("data-parallel ranks ended with different weights")
    saved: str | None = None
    if out_dir is not None and par.is_main:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for p in model.parameters():  # saved weights must be contiguous
            p.requires_grad_(True)
        model.to("cpu")
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        saved = str(out)
    if par.active:  # also a barrier: on every rank, the checkpoint exists once train() returns
        saved = par.all_gather(saved)[0]
    epochs = step / steps_per_epoch if steps_per_epoch else 0.0
    return TrainResult(
        out_dir=saved, labels=tuple(labels), initial_val_macro_f1=initial_f1,
        best_val_macro_f1=selector.kept_f1, best_step=selector.kept_step or 0, steps=step,
        phases=tuple(summaries),
        wall_s=time.perf_counter() - t_start,
        seconds_per_epoch=train_time / epochs if epochs else 0.0,
        device=device, precision=precision.name,
        lr_history=tuple(lr_history), phase_starts=tuple(phase_starts), planned_steps=tuple(plan),
        world_size=par.world, weights_sha256=digest,
    )
