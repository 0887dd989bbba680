"""Trainer: unfreezing schedule, optimizer groups, per-phase schedules, early stopping, devices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import RetrainError
from monitor.retrain import trainer as tr
from monitor.retrain.trainer import TrainConfig, train
from tests.conftest import make_tiny_bert
from tests.retrain.helpers import sentences

LABELS = ["label_0", "label_1"]


def _load(path: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(path))


def _trainable(model: Any) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _units(model: Any, n_layers: int) -> tuple[list[str], set[str], dict[int, set[str]], set[str]]:
    """Parameter names of a tiny BERT: all, the head, each encoder layer, the embeddings."""
    names = [n for n, _ in model.named_parameters()]
    head = {n for n in names if n.startswith(("classifier.", "bert.pooler."))}
    layer = {i: {n for n in names if n.startswith(f"bert.encoder.layer.{i}.")} for i in range(n_layers)}
    emb = {n for n in names if n.startswith("bert.embeddings.")}
    return names, head, layer, emb


def test_each_phase_unfreezes_exactly_the_next_k_layers_from_the_top(tmp_path: Path) -> None:
    model = _load(make_tiny_bert(tmp_path / "m", layers=4))
    names, head, layer, emb = _units(model, 4)
    assert head and emb and all(layer.values())
    expected = [head, head | layer[3] | layer[2], head | layer[3] | layer[2] | layer[1] | layer[0],
                head | layer[3] | layer[2] | layer[1] | layer[0] | emb]
    for phase, want in enumerate(expected):
        units = tr.phase_units("gradual", phase, 4, 2)
        n = tr.set_trainable(model, units)
        assert _trainable(model) == want, phase
        assert n == len(want)
    tr.set_trainable(model, tr.phase_units("head", 3, 4, 2))
    assert _trainable(model) == head
    tr.set_trainable(model, tr.phase_units("full", 0, 4, 2))
    assert _trainable(model) == set(names)


def test_default_phase_count_ends_with_every_unit_unfrozen(tmp_path: Path) -> None:
    model = _load(make_tiny_bert(tmp_path / "m", layers=6))
    names, head, layer, emb = _units(model, 6)
    # MiniLM-shaped: 6 layers, k = 2 -> head, +5+4, +3+2, +1+0, +embeddings = 5 phases
    n_phases = TrainConfig().phase_count(6)
    assert n_phases == tr.resolve_phases(6, 2) == 5
    expected = [head, head | layer[5] | layer[4], head | layer[5] | layer[4] | layer[3] | layer[2],
                head | set().union(*layer.values()), set(names)]
    for phase, want in enumerate(expected):
        tr.set_trainable(model, tr.phase_units("gradual", phase, 6, 2))
        assert _trainable(model) == want, phase
    assert head | set().union(*layer.values()) | emb == set(names)
    # other shapes: the last derived phase always trains every unit, the one before does not
    for n_layers, k, want_phases in [(6, 1, 8), (6, 3, 4), (6, 7, 2), (12, 2, 8), (2, 2, 3), (4, 2, 4)]:
        p = tr.resolve_phases(n_layers, k)
        assert p == want_phases, (n_layers, k)
        assert tr.phase_units("gradual", p - 1, n_layers, k) == tr.phase_units("full", 0, n_layers, k)
        assert len(tr.phase_units("gradual", p - 2, n_layers, k)) < n_layers + 2
    # a fixed count is honoured; full / head run one phase
    assert TrainConfig(phases=3).phase_count(6) == 3
    assert TrainConfig(strategy="full").phase_count(6) == TrainConfig(strategy="head").phase_count(6) == 1


def test_step_allocation_sums_to_the_budget_and_grows_with_depth() -> None:
    # MiniLM, k = 2: units per phase 1, 3, 5, 7, 8; one step each, 85 split 1:3:5:7:8
    weights = tr.phase_weights("gradual", 5, 6, 2)
    assert weights == [1, 3, 5, 7, 8]
    assert tr.allocate_steps(90, weights) == [4, 12, 19, 26, 29]
    assert tr.phase_weights("gradual", 5, 6, 2, "equal") == [1, 1, 1, 1, 1]
    assert tr.allocate_steps(10, [1, 1, 1]) == [3, 3, 4]  # ties go to the later phase
    assert tr.allocate_steps(5, [1, 3, 5, 7, 8]) == [1, 1, 1, 1, 1]
    for total in (5, 6, 17, 90, 91, 1000):
        for n_layers, k in [(6, 2), (2, 1), (12, 3), (3, 5)]:
            w = tr.phase_weights("gradual", tr.resolve_phases(n_layers, k), n_layers, k)
            plan = tr.allocate_steps(total, w) if total >= len(w) else None
            if plan is None:
                continue
            assert sum(plan) == total and min(plan) >= 1
            assert plan == sorted(plan)  # later phases never get fewer steps
            assert plan[-1] == max(plan)
    with pytest.raises(RetrainError, match="at least one step"):
        tr.allocate_steps(4, [1, 3, 5, 7, 8])


def test_a_gradual_run_follows_the_derived_plan(tmp_path: Path) -> None:
    src = make_tiny_bert(tmp_path / "m", layers=2)
    cfg = TrainConfig(max_steps=24, lr=1e-3, eval_every=100, progress=False)
    res = train(src, sentences(64, seed=1, labels=("label_0", "label_1")),
                sentences(16, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    # 2 layers, k = 2: phases head | head+layer.1+layer.0 | everything; weights 1:3:4 of 21 (+1 each)
    assert res.planned_steps == (4, 9, 11) and res.phase_starts == (0, 4, 13)
    assert [p.units for p in res.phases] == [("head",), ("head", "layer.1", "layer.0"),
                                             ("head", "layer.1", "layer.0", "embeddings")]
    assert [p.steps for p in res.phases] == [4, 9, 11]
    model = _load(src)
    assert res.phases[-1].n_trainable == sum(1 for _ in model.parameters())
    # epochs mode: phases x epochs_per_phase epochs in all, split by the same rule
    cfg = TrainConfig(epochs_per_phase=1.0, batch_size=16, eval_every=100, progress=False)
    res = train(src, sentences(64, seed=1, labels=("label_0", "label_1")),
                sentences(16, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    # 64 rows / batch 16 = 4 steps per epoch, 3 phases -> 12 steps: 1 each + 9 split 1:3:4
    assert res.planned_steps == (2, 4, 6)


def test_param_groups_carry_layer_wise_lrs_and_the_no_decay_split(tmp_path: Path) -> None:
    model = _load(make_tiny_bert(tmp_path / "m", layers=3))
    tr.set_trainable(model, tr.phase_units("full", 0, 3, 1))
    lrs = tr.layer_lrs(3, 1e-3, 0.9)
    groups = tr.param_groups(model, lrs, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head/decay"]["lr"] == pytest.approx(1e-3)
    for i in range(3):
        assert by_name[f"layer.{i}/decay"]["lr"] == pytest.approx(1e-3 * 0.9 ** (3 - i))
        assert by_name[f"layer.{i}/no_decay"]["lr"] == pytest.approx(1e-3 * 0.9 ** (3 - i))
    assert by_name["embeddings/decay"]["lr"] == pytest.approx(1e-3 * 0.9**4)
    ordered = sorted(groups, key=lambda g: g["lr"])
    assert ordered[0]["name"].startswith("embeddings") and ordered[-1]["name"].startswith("head")
    for g in groups:
        no_decay = g["name"].endswith("/no_decay")
        assert g["weight_decay"] == (0.0 if no_decay else 0.01)
        for n in g["param_names"]:
            assert (n.endswith(".bias") or "LayerNorm" in n) == no_decay, n
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == sum(1 for _ in model.parameters())
    # frozen parameters are not handed to the optimizer
    tr.set_trainable(model, ("head",))
    assert {g["name"] for g in tr.param_groups(model, lrs, 0.01)} == {"head/decay", "head/no_decay"}


def test_head_lr_scale_raises_only_the_head(tmp_path: Path) -> None:
    model = _load(make_tiny_bert(tmp_path / "m", layers=2))
    tr.set_trainable(model, tr.phase_units("full", 0, 2, 1))
    lrs = tr.layer_lrs(2, 1e-4, 0.5, head_scale=10.0)
    assert lrs == pytest.approx({"head": 1e-3, "layer.1": 5e-5, "layer.0": 2.5e-5, "embeddings": 1.25e-5})
    groups = tr.param_groups(model, lrs, 0.01)
    ratios = tr.head_lr_ratios(groups)
    assert ratios["head/decay"] == ratios["head/no_decay"] == pytest.approx(1.0)
    assert ratios["layer.1/decay"] == pytest.approx(0.05)
    assert ratios["embeddings/no_decay"] == pytest.approx(0.0125)
    # ratios are relative to the head even when the head is not the highest
    low = tr.param_groups(model, tr.layer_lrs(2, 1e-4, 1.0, head_scale=0.5), 0.01)
    assert tr.head_lr_ratios(low)["layer.0/decay"] == pytest.approx(2.0)
    with pytest.raises(RetrainError, match="head_lr_scale"):
        TrainConfig(head_lr_scale=0.0)


def test_optimizer_groups_of_a_run_use_the_head_scale(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    seen: list[dict[str, float]] = []
    real = torch.optim.AdamW

    def spy(groups: list[dict[str, Any]], **kw: Any) -> Any:
        seen.append({g["name"]: g["lr"] for g in groups})
        return real(groups, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    src = make_tiny_bert(tmp_path / "m", layers=2)
    cfg = TrainConfig(max_steps=6, lr=1e-3, layer_decay=0.5, head_lr_scale=4.0, eval_every=100,
                      progress=False)
    train(src, sentences(32, seed=1, labels=("label_0", "label_1")),
          sentences(8, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    assert [sorted({k.split("/")[0] for k in g}) for g in seen] == [
        ["head"], ["head", "layer.0", "layer.1"], ["embeddings", "head", "layer.0", "layer.1"]]
    last = seen[-1]
    assert last["head/decay"] == pytest.approx(4e-3) and last["layer.1/decay"] == pytest.approx(5e-4)
    assert last["layer.0/no_decay"] == pytest.approx(2.5e-4)
    assert last["embeddings/decay"] == pytest.approx(1.25e-4)


def test_warmup_decay_known_values() -> None:
    f = tr.warmup_decay(10, 0.3)
    assert [round(f(s), 4) for s in range(10)] == [0.3333, 0.6667, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375,
                                                  0.25, 0.125]


def test_scheduler_restarts_with_a_fresh_warmup_in_every_phase(tmp_path: Path) -> None:
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(phases=3, layers_per_phase=1, max_steps=30, lr=1e-3, warmup_ratio=0.3,
                      eval_every=100, progress=False)
    res = train(src, sentences(64, seed=1, labels=("label_0", "label_1")),
                sentences(16, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    # units per phase 1, 2, 3 -> one step each + 27 split 1:2:3 (4.5 / 9 / 13.5, the tie to the later)
    assert res.planned_steps == (5, 10, 15) and res.phase_starts == (0, 5, 15)
    expected = [1e-3 * tr.warmup_decay(n, 0.3)(s) for n in res.planned_steps for s in range(n)]
    assert res.lr_history == pytest.approx(expected)
    assert [res.lr_history[i] for i in res.phase_starts] == pytest.approx([1e-3 / 2, 1e-3 / 3, 1e-3 / 5])
    assert [p.units for p in res.phases] == [("head",), ("head", "layer.1"), ("head", "layer.1", "layer.0")]


def test_early_stopping_restores_the_best_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    scripted = iter([0.40, 0.55, 0.90, 0.60, 0.50, 0.45, 0.42, 0.41, 0.40, 0.39, 0.38])
    states: list[dict[str, Any]] = []

    def fake_eval(self: Any) -> tuple[float, float, Any]:
        states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return 1.0, next(scripted), self.y

    monkeypatch.setattr(tr._Evaluator, "__call__", fake_eval)
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(strategy="full", max_steps=20, eval_every=2, patience=2, lr=1e-2, progress=False,
                      selection_alpha=1.0)  # the classic rule: every drop below the best counts
    res = train(src, sentences(64, seed=1, labels=("label_0", "label_1")),
                sentences(16, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg,
                out_dir=tmp_path / "out")
    # evaluations at steps 0, 2, 4, 6, 8: best 0.90 at step 4; two worse ones stop the (only) phase
    assert res.best_val_macro_f1 == pytest.approx(0.90) and res.best_step == 4
    assert res.steps == 8 and res.phases[0].stopped_early
    saved = _load(tmp_path / "out").state_dict()
    best = states[2]
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert not all(torch.equal(saved[k], states[-1][k]) for k in best)


def _flip(y: Any, rows: list[int]) -> Any:
    p = y.copy()
    p[rows] = 1 - p[rows]
    return p


@pytest.mark.parametrize(("alpha", "best_step", "steps"), [(0.05, 6, 10), (1.0, 2, 6)])
def test_checkpoints_level_within_noise_go_to_the_later_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            alpha: float, best_step: int,
                                                            steps: int) -> None:
    # evaluations at steps 0, 2, 4, 6, 8, 10 on 40 rows: (loss, wrong rows)
    scripted = iter([(1.0, list(range(20))), (0.9, [0]), (0.8, [0, 1]), (0.7, [0, 1, 2]),
                     (0.6, list(range(15))), (0.5, list(range(16)))])

    def fake_eval(self: Any) -> tuple[float, float, Any]:
        loss, wrong = next(scripted)
        pred = _flip(self.y, wrong)
        return loss, tr.macro_f1(self.y, pred, 2), pred

    monkeypatch.setattr(tr._Evaluator, "__call__", fake_eval)
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(strategy="full", max_steps=20, eval_every=2, patience=2, progress=False,
                      selection_alpha=alpha)
    res = train(src, sentences(32, seed=1, labels=("label_0", "label_1")),
                sentences(40, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    # one or two rows worse than the top (step 2) is not a significant drop (p = 0.5, 0.25): the latest
    # of those (step 6) is kept and patience only counts the clearly worse steps 8 and 10; with
    # alpha = 1 every drop counts, so steps 4 and 6 end the run and the top itself is kept
    assert res.best_step == best_step and res.steps == steps and res.phases[0].stopped_early


def test_patience_ends_a_phase_not_the_whole_gradual_run(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = iter(range(1000))

    def fake_eval(self: Any) -> tuple[float, float, Any]:
        good = next(calls) == 1  # the first evaluation after training starts is the only good one
        return 1.0, 0.9 if good else 0.5, self.y if good else 1 - self.y

    monkeypatch.setattr(tr._Evaluator, "__call__", fake_eval)
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(phases=3, layers_per_phase=1, max_steps=30, eval_every=1, patience=1, progress=False)
    res = train(src, sentences(32, seed=1, labels=("label_0", "label_1")),
                sentences(8, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    assert [p.steps for p in res.phases] == [2, 1, 1]  # each phase ends at its first significant drop
    assert all(p.stopped_early for p in res.phases)
    assert res.best_step == 1  # the first trained evaluation; the untrained state is never "best"


def test_training_learns_and_logs_at_a_fixed_cadence(tmp_path: Path) -> None:
    from monitor.store import Store

    src = make_tiny_bert(tmp_path / "m")
    store = Store(":memory:")
    # the random tiny model only learns once its embeddings train (last phase): equal split, 20 steps each
    cfg = TrainConfig(max_steps=60, lr=1e-2, eval_every=20, log_every=5, progress=False, seed=0,
                      step_allocation="equal")
    res = train(src, sentences(200, seed=1, labels=("label_0", "label_1")),
                sentences(60, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg,
                out_dir=tmp_path / "out", log_sink=tr.store_log_sink(store, "run1", "m"))
    assert res.best_val_macro_f1 >= 0.9 > res.initial_val_macro_f1
    rows = store.fetch_dicts("retrain_training_logs", {"train_run_id": "run1"})
    assert [r["step"] for r in rows] == [0, *range(5, 61, 5)]
    evals = [r["step"] for r in rows if r["val_macro_f1"] is not None]
    assert res.planned_steps == (20, 20, 20) and res.phase_starts == (0, 20, 40)
    assert evals == [0, 20, 40, 60]
    for r in rows[1:]:
        assert r["train_loss"] > 0 and r["grad_norm"] >= 0 and r["lr"] > 0
    assert {r["phase"] for r in rows} == {0, 1, 2}
    cfg_json = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg_json["id2label"] == {"0": "label_0", "1": "label_1"}


def test_initial_fine_tune_from_a_bare_encoder_gets_a_fresh_head(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    src = make_tiny_bert(tmp_path / "cls")
    base = tmp_path / "base"
    AutoModel.from_pretrained(str(src)).save_pretrained(str(base))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(base))
    cfg = TrainConfig(strategy="full", max_steps=40, lr=3e-3, eval_every=20, progress=False)
    res = train(base, sentences(200, seed=1), sentences(40, seed=2), labels=["neg", "pos"], config=cfg,
                out_dir=tmp_path / "out")
    assert res.best_val_macro_f1 >= 0.9
    model = _load(tmp_path / "out")
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_device_and_precision_selection() -> None:
    assert tr.resolve_device(None, cuda_available=False) == "cpu"
    assert tr.resolve_device("auto", cuda_available=True) == "cuda"
    assert tr.resolve_device("cuda:1", cuda_available=True) == "cuda:1"
    assert tr.resolve_device("cuda", cuda_available=False) == "cpu"
    with pytest.raises(RetrainError):
        tr.resolve_device("tpu", cuda_available=False)
    assert tr.select_precision("cpu") == tr.Precision("cpu", None, False)
    assert tr.select_precision("cuda", bf16_supported=True) == tr.Precision("cuda", "bfloat16", False)
    fp16 = tr.select_precision("cuda:0", bf16_supported=False)
    assert fp16 == tr.Precision("cuda", "float16", True) and fp16.name == "fp16"
    assert tr.select_precision("cuda", amp=False, bf16_supported=True).name == "fp32"


def test_cuda_request_falls_back_to_cpu_fp32(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the fallback path is not taken")
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(strategy="head", max_steps=3, device="cuda", progress=False)
    res = train(src, sentences(16, seed=1, labels=("label_0", "label_1")),
                sentences(8, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg)
    assert (res.device, res.precision) == ("cpu", "fp32")


def test_bad_input_is_refused(tmp_path: Path) -> None:
    src = make_tiny_bert(tmp_path / "m")
    with pytest.raises(RetrainError, match="not among the model's labels"):
        train(src, sentences(8, seed=1), sentences(4, seed=2), labels=LABELS,
              config=TrainConfig(max_steps=3, progress=False))
    with pytest.raises(RetrainError):
        TrainConfig(strategy="bogus")  # type: ignore[arg-type]


def test_step_budget_is_max_steps_or_phases_times_epochs() -> None:
    assert TrainConfig(max_steps=42).step_budget(750, 6) == 42
    # 750 rows / batch 16 = 47 steps per epoch; 6 layers, k = 2 -> 5 phases x 1 epoch
    assert TrainConfig().step_budget(750, 6) == 235
    assert TrainConfig(strategy="full", epochs_per_phase=2.0).step_budget(750, 6) == 94


def test_same_seed_same_weights_whatever_the_threads_of_the_process(tmp_path: Path) -> None:
    """Training runs with its own fixed thread count and deterministic algorithms, then restores both."""
    import torch
    from safetensors.torch import load_file

    src = make_tiny_bert(tmp_path / "m")
    seen: list[tuple[int, bool]] = []

    def sink(rows: list[dict[str, Any]]) -> None:
        seen.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))

    cfg = TrainConfig(strategy="full", max_steps=12, lr=1e-2, eval_every=6, log_every=3, progress=False,
                      seed=3, threads=2)
    before = torch.get_num_threads()
    weights = []
    try:
        for ambient in (1, 2):
            torch.set_num_threads(ambient)
            train(src, sentences(48, seed=1, labels=("label_0", "label_1")),
                  sentences(16, seed=2, labels=("label_0", "label_1")), labels=LABELS, config=cfg,
                  out_dir=tmp_path / f"out{ambient}", log_sink=sink)
            assert torch.get_num_threads() == ambient  # restored
            assert not torch.are_deterministic_algorithms_enabled()
            weights.append(load_file(str(tmp_path / f"out{ambient}" / "model.safetensors")))
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {(2, True)}
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
    with pytest.raises(RetrainError, match="threads"):
        TrainConfig(threads=0)
