"""Registry: versions, exactly one active, atomic pointer, rollback by checksum, crash recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.errors import RegistryError
from monitor.registry import (
    PointerWatcher,
    Preprocessing,
    Registry,
    file_sha256,
    read_active_pointer,
    write_active_pointer,
)
from monitor.store import Store
from tests.conftest import make_tiny_bert


@pytest.fixture()
def two_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two tiny classifiers with different weights."""
    return make_tiny_bert(tmp_path / "a", layers=2), make_tiny_bert(tmp_path / "b", layers=1)


def _actives(store: Store, model: str) -> list[str]:
    return [str(r[0]) for r in store.execute("registry_active_versions", {"model_name": model})]


def test_register_copies_artifacts_and_preprocessing(tmp_path: Path, two_models: tuple[Path, Path]) -> None:
    store = Store(":memory:")
    reg = Registry(store, tmp_path / "reg")
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "good", "label": "label_1"}\n', encoding="utf-8")
    pre = Preprocessing(max_length=64, truncation_side="left", pooling="cls", labels=("label_0", "label_1"))
    mv = reg.register("sentiment", two_models[0], preprocessing=pre, train_file=train)
    assert (mv.version, mv.status, mv.parent_version) == ("v1", "candidate", None)
    for name in ("model.safetensors", "config.json", "shiftwatch.json", "train.jsonl"):
        assert (mv.artifact_dir / name).is_file(), name
    assert any((mv.artifact_dir / n).is_file() for n in ("tokenizer.json", "vocab.txt"))
    assert mv.preprocessing == pre and mv.weights_sha256 == file_sha256(mv.weights_path)
    assert reg.get("sentiment", "v1") == mv
    assert reg.active("sentiment") is None and read_active_pointer(reg.root, "sentiment") is None
    with pytest.raises(RegistryError, match="already has a version"):
        reg.register("sentiment", two_models[1], version="v1")
    with pytest.raises(RegistryError, match="not found"):
        reg.register("sentiment", tmp_path / "missing")
    # labels default to the model config's id2label
    assert reg.register("sentiment", two_models[1]).preprocessing.labels == ("label_0", "label_1")
    encoder = reg.load_encoder(mv, device="cpu")
    assert (encoder.max_length, encoder.pooling, encoder.tokenizer.truncation_side) == (64, "cls", "left")


def test_preprocessing_takes_the_encoder_poolings_only() -> None:
    from collectors.encoding import POOLINGS, TextEncoder

    assert [Preprocessing(pooling=p).pooling for p in POOLINGS] == ["mean", "cls", "pooler"]
    with pytest.raises(RegistryError, match="pooling must be mean, cls or pooler, got 'max'"):
        Preprocessing(pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooling must be mean, cls or pooler, got 'max'"):
        TextEncoder(object(), object(), pooling="max")  # type: ignore[arg-type]


def test_exactly_one_active_and_rollback_restores_exact_previous_weights(
        tmp_path: Path, two_models: tuple[Path, Path]) -> None:
    store = Store(":memory:")
    events: list[dict[str, Any]] = []
    reg = Registry(store, tmp_path / "reg", listeners=[events.append])
    v1 = reg.register("m", two_models[0], status="active")
    v2 = reg.register("m", two_models[1], parent="v1")
    assert v1.weights_sha256 != v2.weights_sha256
    assert _actives(store, "m") == ["v1"] and read_active_pointer(reg.root, "m") == "v1"
    reg.promote("m", "v2", reason="better on production")
    assert _actives(store, "m") == ["v2"] and read_active_pointer(reg.root, "m") == "v2"
    assert reg.get("m", "v1").status == "retired"

    restored = reg.rollback("m", reason="accuracy fell")
    assert restored.version == "v1" and _actives(store, "m") == ["v1"]
    assert read_active_pointer(reg.root, "m") == "v1"
    assert file_sha256(restored.weights_path) == v1.weights_sha256
    loaded = reg.load_encoder(reg.active("m"), device="cpu")  # type: ignore[arg-type]
    assert loaded.model.config.num_hidden_layers == 2
    assert reg.get("m", "v2").status == "rejected"
    assert [e["kind"] for e in events] == ["promote", "promote", "rollback"]
    assert events[-1]["from_version"] == "v2" and events[-1]["reason"] == "accuracy fell"
    kinds = [e["kind"] for e in reg.events("m")]
    assert kinds.count("rollback") == 1 and kinds.count("register") == 2
    # nothing earlier than v1 to roll back to; an explicit target still works
    with pytest.raises(RegistryError, match="no earlier active version"):
        reg.rollback("m", reason="again")
    assert reg.rollback("m", to="v2", reason="it was fine").version == "v2"
    assert _actives(store, "m") == ["v2"]


def test_tampered_weights_are_refused(tmp_path: Path, two_models: tuple[Path, Path]) -> None:
    reg = Registry(Store(":memory:"), tmp_path / "reg")
    reg.register("m", two_models[0], status="active")
    v2 = reg.register("m", two_models[1])
    with v2.weights_path.open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(RegistryError, match="checksum mismatch"):
        reg.promote("m", "v2", reason="x")
    assert reg.active("m").version == "v1"  # type: ignore[union-attr]
    assert read_active_pointer(reg.root, "m") == "v1"


def test_crash_between_db_update_and_pointer_replace_is_recovered_on_start(
        tmp_path: Path, two_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "db.duckdb"
    with Store(db) as store:
        reg = Registry(store, tmp_path / "reg")
        reg.register("m", two_models[0], status="active")
        reg.register("m", two_models[1])

        def crash(self: Registry, model_name: str, version: str) -> None:
            raise KeyboardInterrupt("power cut")

        monkeypatch.setattr(Registry, "_replace_pointer", crash)
        with pytest.raises(KeyboardInterrupt):
            reg.promote("m", "v2", reason="better")
        monkeypatch.undo()
        # the DB committed v2, the pointer still names v1: old and new are both complete versions
        assert _actives(store, "m") == ["v2"]
        assert read_active_pointer(tmp_path / "reg", "m") == "v1"
    with Store(db) as store:  # "start": a new process opens the store and recovers
        reg = Registry(store, tmp_path / "reg")
        assert reg.recover() == ["m"]
        assert read_active_pointer(tmp_path / "reg", "m") == "v2"
        assert reg.recover() == []
        assert [e["kind"] for e in reg.events("m")][-1] == "recover"


def test_pointer_is_replaced_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    write_active_pointer(tmp_path, "m", "v1")
    write_active_pointer(tmp_path, "m", "v2")
    assert read_active_pointer(tmp_path, "m") == "v2"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["ACTIVE"]


def test_pointer_watcher_reloads_on_change_and_retries_failures(tmp_path: Path) -> None:
    seen: list[str] = []
    fail = {"on": True}

    def reload(version: str) -> None:
        if fail["on"]:
            raise RuntimeError("load failed")
        seen.append(version)

    watcher = PointerWatcher(tmp_path, "m", reload, current="v1")
    write_active_pointer(tmp_path, "m", "v1")
    assert watcher.poll() is None
    write_active_pointer(tmp_path, "m", "v2")
    assert watcher.poll() is None and watcher.current == "v1"  # failed reload: keep serving v1
    fail["on"] = False
    assert watcher.poll() == "v2" and seen == ["v2"] and watcher.current == "v2"
    assert watcher.poll() is None


def test_load_active_reads_the_pointer_and_preprocessing_from_files_only(
        tmp_path: Path, two_models: tuple[Path, Path]) -> None:
    from monitor.registry import load_active, read_version

    store = Store(":memory:")
    root = tmp_path / "reg"
    reg = Registry(store, root)
    assert load_active(root, "sentiment") is None
    reg.register("sentiment", two_models[0], version="v1", status="active",
                 preprocessing=Preprocessing(max_length=64, labels=("neg", "pos")))
    reg.register("sentiment", two_models[1], version="v2")
    store.close()  # nothing below needs the DB
    active = load_active(root, "sentiment")
    assert active is not None and active.version == "v1" and active.directory == root / "sentiment" / "v1"
    assert active.preprocessing.max_length == 64 and active.preprocessing.labels == ("neg", "pos")
    assert read_version(root, "sentiment", "v2").version == "v2"
    with pytest.raises(RegistryError, match="cannot read"):
        read_version(root, "sentiment", "v9")
