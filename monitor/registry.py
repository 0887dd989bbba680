"""The model registry: versioned artifacts, one active version per model, atomic switches.

Layout under the registry root (``settings.registry_dir``)::

    <root>/<model_name>/ACTIVE               the active version, one line (replaced atomically)
    <root>/<model_name>/<version>/           one immutable artifact directory per version
        model.safetensors, config.json       the weights (checksum recorded in DuckDB)
        tokenizer.json, vocab.txt, ...       the tokenizer files
        shiftwatch.json                      preprocessing that is part of the model
        train.<jsonl|csv>                    the original training data, when registered

DuckDB (``model_versions``) is the source of truth for status; the ``ACTIVE``
pointer file is what a serving stack watches. Activation commits the DB
transaction first and then replaces the pointer (write a temporary file,
fsync, ``os.replace``). A crash between the two leaves the DB on the new
version and the pointer on the old one — both complete versions, never none —
and :meth:`Registry.recover` (run on start) rewrites the pointer from the DB.

A version that is rolled back *from* becomes ``rejected`` so that a second
rollback goes further back instead of toggling between two versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from collectors.encoding import check_pooling
from collectors.loops import LoopService
from monitor.errors import RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from collectors.encoding import TextEncoder
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = [
    "CONFIG_FILE",
    "POINTER_FILE",
    "STATUSES",
    "ModelVersion",
    "PointerWatcher",
    "Preprocessing",
    "Registry",
    "VersionFiles",
    "file_sha256",
    "load_active",
    "read_active_pointer",
    "read_version",
    "write_active_pointer",
]

log = logging.getLogger(__name__)

Status = Literal["candidate", "active", "rejected", "retired"]
STATUSES: tuple[str, ...] = ("candidate", "active", "rejected", "retired")
POINTER_FILE = "ACTIVE"
CONFIG_FILE = "shiftwatch.json"
WEIGHTS_FILE = "model.safetensors"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                    "merges.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                    "added_tokens.json")


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """Preprocessing that is part of a model version: inputs are useless without it."""

    max_length: int = 128
    truncation_side: Literal["right", "left"] = "right"
    pooling: Literal["mean", "cls", "pooler"] = "mean"
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if self.max_length < 2:
            raise RegistryError(f"max_length must be at least 2, got {self.max_length}")
        if self.truncation_side not in ("right", "left"):
            raise RegistryError(f"truncation_side must be right or left, got {self.truncation_side!r}")
        try:
            check_pooling(self.pooling)
        except ValueError as exc:
            raise RegistryError(str(exc)) from exc
        if len(set(self.labels)) != len(self.labels):
            raise RegistryError(f"label names repeat: {list(self.labels)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``shiftwatch.json``)."""
        return {"max_length": self.max_length, "truncation_side": self.truncation_side,
                "pooling": self.pooling, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        return cls(max_length=int(data.get("max_length", 128)),
                   truncation_side=data.get("truncation_side", "right"),
                   pooling=data.get("pooling", "mean"),
                   labels=tuple(data.get("labels", ())))


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model."""

    model_name: str
    version: str
    status: str
    artifact_dir: Path
    preprocessing: Preprocessing
    parent_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    created_at: datetime | None = None
    activated_at: datetime | None = None
    weights_sha256: str | None = None
    train_file: Path | None = None

    @property
    def weights_path(self) -> Path:
        """The safetensors weights file."""
        return self.artifact_dir / WEIGHTS_FILE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI ``--json``, HTTP)."""
        return {
            "model_name": self.model_name, "version": self.version, "status": self.status,
            "parent_version": self.parent_version, "artifact_dir": str(self.artifact_dir),
            "preprocessing": self.preprocessing.to_dict(), "metrics": self.metrics,
            "reason": self.reason,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "weights_sha256": self.weights_sha256,
            "train_file": str(self.train_file) if self.train_file else None,
        }


# -- pointer file ---------------------------------------------------------------------
def read_active_pointer(root: str | Path, model_name: str) -> str | None:
    """The version named by ``<root>/<model_name>/ACTIVE``, or None when there is none."""
    path = Path(root) / model_name / POINTER_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    return text or None


def write_active_pointer(root: str | Path, model_name: str, version: str) -> Path:
    """Atomically replace the ``ACTIVE`` pointer: write a temp file, fsync, ``os.replace``."""
    directory = Path(root) / model_name
    path = directory / POINTER_FILE
    tmp = directory / f".{POINTER_FILE}.{uuid.uuid4().hex}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(version + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise RegistryError(f"cannot write {path}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)
    return path


class PointerWatcher:
    """Calls ``on_change(version)`` when a model's ``ACTIVE`` pointer changes.

    :meth:`poll` checks once (tests, or a serving loop between requests);
    :meth:`start` polls every ``interval_s`` seconds on a daemon thread (a
    :class:`~collectors.loops.LoopService`, :attr:`service`). The
    callback should load the new version fully and then swap a reference, so
    in-flight requests finish on the old model and none are dropped. A failing
    callback is logged and retried on the next poll.
    """

    def __init__(self, root: str | Path, model_name: str, on_change: Callable[[str], None], *,
                 interval_s: float = 1.0, current: str | None = None) -> None:
        self.root = Path(root)
        self.model_name = model_name
        self.on_change = on_change
        self.interval_s = interval_s
        self.current = current
        self.service = LoopService(f"pointer-{model_name}", interval_s=interval_s, target=self.poll,
                                   logger=log)

    def poll(self) -> str | None:
        """Check the pointer once; return the new version if it changed (after the callback)."""
        try:
            version = read_active_pointer(self.root, self.model_name)
        except RegistryError as exc:
            log.warning("pointer watcher: %s", exc)
            return None
        if version is None or version == self.current:
            return None
        try:
            self.on_change(version)
        except Exception:
            log.exception("pointer watcher: reloading %s %s failed; will retry", self.model_name, version)
            return None
        self.current = version
        return version

    def start(self) -> PointerWatcher:
        """Poll on a background daemon thread until :meth:`stop`."""
        self.service.start()
        return self

    def stop(self) -> None:
        """Stop the background thread (if any) and wait for it."""
        self.service.stop(timeout_s=max(self.interval_s * 2, 1.0))


# -- helpers --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VersionFiles:
    """What serving code needs of a registered version, read from its files alone (no DB)."""

    model_name: str
    version: str
    directory: Path
    preprocessing: Preprocessing


def read_version(root: str | Path, model_name: str, version: str) -> VersionFiles:
    """The files of ``<root>/<model_name>/<version>``: its directory and preprocessing
    (``shiftwatch.json``: max_length, truncation side, pooling, label names)."""
    directory = Path(root) / model_name / version
    path = directory / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    return VersionFiles(model_name, version, directory, Preprocessing.from_dict(data))


def load_active(root: str | Path, model_name: str) -> VersionFiles | None:
    """The version the ``ACTIVE`` pointer names, read from files only (no DuckDB, so a serving
    process can call it while the sidecar holds the DB); ``None`` when there is none."""
    version = read_active_pointer(root, model_name)
    return read_version(root, model_name, version) if version is not None else None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    return h.hexdigest()


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise RegistryError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-' (max 128)")
    return value


def _json(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if loaded is not None else {}
    return value


def _copy_artifacts(source: Path, dest: Path) -> None:
    """Copy config, tokenizer files and weights; convert non-safetensors weights."""
    if not (source / "config.json").is_file():
        raise RegistryError(f"{source}: not a Hugging Face model directory (no config.json)")
    dest.mkdir(parents=True, exist_ok=False)
    for name in ("config.json", "generation_config.json", *_TOKENIZER_FILES):
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    if not any((dest / n).is_file() for n in ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model")):
        raise RegistryError(f"{source}: no tokenizer files found")
    weights = source / WEIGHTS_FILE
    if weights.is_file():
        shutil.copy2(weights, dest / WEIGHTS_FILE)
        return
    # sharded or .bin weights: load and re-save as a single safetensors file
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(source))
        model.save_pretrained(str(dest), safe_serialization=True, max_shard_size="100GB")
    except Exception as exc:  # transformers raises many types here
        raise RegistryError(f"{source}: cannot load the model weights: {exc}") from exc
    if not (dest / WEIGHTS_FILE).is_file():
        raise RegistryError(f"{source}: weights were not written as {WEIGHTS_FILE}")


def _labels_from_config(directory: Path) -> tuple[str, ...]:
    try:
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    id2label = cfg.get("id2label") or {}
    try:
        return tuple(str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k)))
    except (ValueError, TypeError):
        return ()


#: registry changes that send an event notification (retrain outcomes send their own)
_NOTIFIED = ("promote", "rollback", "recover")


# -- the registry ---------------------------------------------------------------------
class Registry:
    """Model versions in DuckDB plus artifact directories and ``ACTIVE`` pointers under ``root``.

    With ``settings``, every activation change (promote, rollback, recover) also queues an
    event notification in the outbox (:func:`monitor.outbox.enqueue_event`, kind = the change)
    in the transaction that records it; the delivery job posts it to ``settings.webhook_url``.
    ``listeners`` are called in-process as ``listener(event)`` after every activation change
    with a dict ``{"kind", "model_name", "from_version", "to_version", "reason"}``. A failing
    listener is logged, never undoes the switch.
    """

    def __init__(self, store: Store, root: str | Path, *,
                 listeners: Sequence[Callable[[dict[str, Any]], None]] = (),
                 settings: Settings | None = None) -> None:
        self.store = store
        self.root = Path(root)
        self.listeners = list(listeners)
        self.settings = settings
        self._lock = threading.RLock()

    # -- reading ----------------------------------------------------------------------
    def _row_to_version(self, row: Mapping[str, Any]) -> ModelVersion:
        pre = _json(row["preprocessing"])
        train = row.get("train_file")
        return ModelVersion(
            model_name=row["model_name"], version=row["version"], status=row["status"],
            artifact_dir=Path(row["artifact_dir"]), preprocessing=Preprocessing.from_dict(pre),
            parent_version=row["parent_version"], metrics=dict(_json(row["metrics"])),
            reason=row["reason"], created_at=row["created_at"], activated_at=row["activated_at"],
            weights_sha256=row.get("weights_sha256"), train_file=Path(train) if train else None,
        )

    def get(self, model_name: str, version: str) -> ModelVersion:
        """One version; :class:`RegistryError` when it does not exist."""
        rows = self.store.fetch_dicts("registry_get_version", {"model_name": model_name, "version": version})
        if not rows:
            raise RegistryError(f"model {model_name!r} has no version {version!r}")
        return self._row_to_version(rows[0])

    def versions(self, model_name: str | None = None) -> list[ModelVersion]:
        """All versions (of one model), oldest first."""
        rows = self.store.fetch_dicts("registry_list_versions", {"model_name": model_name})
        return [self._row_to_version(r) for r in rows]

    def model_names(self) -> list[str]:
        """Every model with at least one version."""
        return [str(r[0]) for r in self.store.execute("registry_model_names")]

    def active(self, model_name: str) -> ModelVersion | None:
        """The active version of a model, or None."""
        rows = self.store.execute("registry_active_versions", {"model_name": model_name})
        return self.get(model_name, str(rows[0][0])) if rows else None

    def events(self, model_name: str) -> list[dict[str, Any]]:
        """The registry history of a model, oldest first."""
        return self.store.fetch_dicts("registry_events", {"model_name": model_name})

    def _next_version(self, model_name: str) -> str:
        numbers = [int(m.group(1)) for mv in self.versions(model_name)
                   if (m := re.fullmatch(r"v(\d+)", mv.version))]
        return f"v{max(numbers, default=0) + 1}"

    # -- writing ----------------------------------------------------------------------
    def register(
        self,
        model_name: str,
        source_dir: str | Path,
        *,
        version: str | None = None,
        preprocessing: Preprocessing | None = None,
        parent: str | None = None,
        status: Status = "candidate",
        metrics: Mapping[str, Any] | None = None,
        train_file: str | Path | None = None,
        reason: str | None = None,
        embedding_dim: int | None = None,
    ) -> ModelVersion:
        """Copy a Hugging Face model directory into the registry as a new version.

        ``preprocessing=None`` takes the label names from the model config and
        defaults for the rest. ``status="active"`` activates the new version
        (atomically, like :meth:`promote`). ``train_file`` (JSONL or CSV of
        ``text,label``) is copied next to the weights: retraining mixes it with
        labelled production rows. ``embedding_dim`` fixes the embedding dimension of
        the version's records (origin ``registry``); without it the first accepted
        record fixes it.
        """
        _check_name("model name", model_name)
        if status not in STATUSES:
            raise RegistryError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        source = Path(source_dir)
        if not source.is_dir():
            raise RegistryError(f"model directory not found: {source}")
        with self._lock:
            version = _check_name("version", version or self._next_version(model_name))
            if self.store.execute("registry_get_version", {"model_name": model_name, "version": version}):
                raise RegistryError(f"model {model_name!r} already has a version {version!r}")
            if parent is not None:
                self.get(model_name, parent)
            dest = self.root / model_name / version
            if dest.exists():
                raise RegistryError(f"artifact directory already exists: {dest}")
            pre = preprocessing or Preprocessing(labels=_labels_from_config(source))
            if not pre.labels:
                pre = Preprocessing(pre.max_length, pre.truncation_side, pre.pooling,
                                    _labels_from_config(source))
            if not pre.labels:
                raise RegistryError(f"{source}: label names unknown; pass preprocessing with labels")
            stored_train: Path | None = None
            try:
                _copy_artifacts(source, dest)
                (dest / CONFIG_FILE).write_text(json.dumps(pre.to_dict(), indent=2) + "\n", encoding="utf-8")
                if train_file is not None:
                    tf = Path(train_file)
                    if not tf.is_file():
                        raise RegistryError(f"training data file not found: {tf}")
                    stored_train = dest / f"train{tf.suffix.lower() or '.jsonl'}"
                    shutil.copy2(tf, stored_train)
                sha = file_sha256(dest / WEIGHTS_FILE)
                with self.store.transaction():
                    self.store.execute("registry_insert_version", {
                        "model_name": model_name, "version": version, "status": "candidate",
                        "parent_version": parent, "artifact_dir": str(dest.resolve()),
                        "preprocessing": json.dumps(pre.to_dict()),
                        "metrics": json.dumps(dict(metrics or {})), "reason": reason,
                        "weights_sha256": sha,
                        "train_file": str(stored_train.resolve()) if stored_train else None,
                    })
                    self._event(model_name, "register", None, version, reason)
                    if embedding_dim is not None:
                        self.store.declare_embedding_dim(model_name, version, embedding_dim,
                                                         origin="registry")
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
            if status == "active":
                self.promote(model_name, version, reason=reason or "registered as active")
            elif status != "candidate":
                self.set_status(model_name, version, status, reason=reason)
            return self.get(model_name, version)

    def set_status(self, model_name: str, version: str, status: Status, *, reason: str | None) -> None:
        """Mark a non-active version candidate, rejected or retired (activation: :meth:`promote`)."""
        if status not in ("candidate", "rejected", "retired"):
            raise RegistryError(f"use promote() to activate; cannot set status {status!r}")
        with self._lock:
            mv = self.get(model_name, version)
            if mv.status == "active":
                raise RegistryError(f"{model_name} {version} is active; promote or roll back another version")
            with self.store.transaction():
                self.store.execute("registry_set_status", {"model_name": model_name, "version": version,
                                                           "status": status, "reason": reason})
                if status == "rejected":
                    self._event(model_name, "reject", None, version, reason)

    def set_metrics(self, model_name: str, version: str, metrics: Mapping[str, Any]) -> None:
        """Replace the metrics of a version."""
        self.get(model_name, version)
        self.store.execute("registry_set_metrics", {"model_name": model_name, "version": version,
                                                    "metrics": json.dumps(dict(metrics))})

    def verify(self, mv: ModelVersion) -> None:
        """Raise :class:`RegistryError` unless the weights match the recorded checksum."""
        if not mv.weights_path.is_file():
            raise RegistryError(f"{mv.model_name} {mv.version}: weights missing at {mv.weights_path}")
        if mv.weights_sha256 and file_sha256(mv.weights_path) != mv.weights_sha256:
            raise RegistryError(f"{mv.model_name} {mv.version}: weights checksum mismatch "
                                f"({mv.weights_path} changed since registration)")

    def promote(self, model_name: str, version: str, *, reason: str) -> ModelVersion:
        """Make ``version`` the active version of its model (DB transaction, then pointer)."""
        return self._activate(model_name, version, kind="promote", reason=reason)

    def rollback(self, model_name: str, *, to: str | None = None, reason: str) -> ModelVersion:
        """Restore the previously active version (or ``to``); the current one becomes rejected."""
        with self._lock:
            current = self.active(model_name)
            if current is None:
                raise RegistryError(f"model {model_name!r} has no active version to roll back from")
            if to is None:
                rows = self.store.execute("registry_previous_active",
                                          {"model_name": model_name, "current": current.version})
                if not rows:
                    raise RegistryError(f"model {model_name!r}: no earlier active version to roll back to")
                to = str(rows[0][0])
            if to == current.version:
                raise RegistryError(f"{model_name} {to} is already active")
            return self._activate(model_name, to, kind="rollback", reason=reason)

    def _activate(self, model_name: str, version: str, *, kind: str, reason: str) -> ModelVersion:
        with self._lock:
            target = self.get(model_name, version)
            self.verify(target)
            current = self.active(model_name)
            previous = current.version if current else None
            if previous != version:
                with self.store.transaction():
                    self.store.execute("registry_retire_active", {"model_name": model_name, "keep": version})
                    if previous is not None and kind == "rollback":
                        self.store.execute("registry_set_status", {
                            "model_name": model_name, "version": previous, "status": "rejected",
                            "reason": f"rolled back: {reason}"})
                    self.store.execute("registry_activate",
                                       {"model_name": model_name, "version": version, "reason": reason})
                    self._event(model_name, kind, previous, version, reason)
            self._replace_pointer(model_name, version)
            self._notify({"kind": kind, "model_name": model_name, "from_version": previous,
                          "to_version": version, "reason": reason})
            return self.get(model_name, version)

    def _replace_pointer(self, model_name: str, version: str) -> None:
        """Point ``ACTIVE`` at ``version`` (a seam: tests simulate a crash here)."""
        write_active_pointer(self.root, model_name, version)

    def recover(self) -> list[str]:
        """Reconcile pointers with the DB after a crash; return the models that were repaired.

        The DB decides: a pointer that disagrees with the active version is
        rewritten. A model with versions, a valid pointer and no active row
        (impossible through this API, but possible by hand) gets the pointer's
        version activated.
        """
        repaired: list[str] = []
        with self._lock:
            for name in self.model_names():
                pointer = read_active_pointer(self.root, name)
                active = self.active(name)
                if active is not None and pointer != active.version:
                    self._replace_pointer(name, active.version)
                    self._event(name, "recover", pointer, active.version, "pointer rewritten from the DB")
                    repaired.append(name)
                    self._notify({"kind": "recover", "model_name": name, "from_version": pointer,
                                  "to_version": active.version, "reason": "pointer rewritten from the DB"})
                elif active is None and pointer is not None:
                    known = {"model_name": name, "version": pointer}
                    if self.store.execute("registry_get_version", known):
                        self._activate(name, pointer, kind="recover", reason="activated from the pointer")
                        repaired.append(name)
                for tmp in (self.root / name).glob(f".{POINTER_FILE}.*.tmp"):
                    tmp.unlink(missing_ok=True)
        return repaired

    def _event(self, model_name: str, kind: str, from_version: str | None, to_version: str | None,
               reason: str | None) -> None:
        """Record a registry change and (with settings) queue its notification; call it inside
        the change's transaction."""
        event_id = uuid.uuid4().hex
        self.store.execute("registry_insert_event", {
            "event_id": event_id, "model_name": model_name, "kind": kind,
            "from_version": from_version, "to_version": to_version, "reason": reason})
        if self.settings is not None and kind in _NOTIFIED:
            from monitor.outbox import enqueue_event

            enqueue_event(self.store, self.settings, kind, {
                "model_name": model_name, "model_version": to_version, "from_version": from_version,
                "to_version": to_version, "reason": reason, "registry_event_id": event_id,
                "summary": f"shiftwatch: {model_name} {kind} {from_version or '-'} -> {to_version}: "
                           f"{reason or ''}".rstrip(": ")}, dedupe_key=f"registry|{event_id}")

    def _notify(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("registry listener failed for %s", event)

    # -- loading ----------------------------------------------------------------------
    def load_encoder(self, mv: ModelVersion, *, classifier: bool = True, device: str | None = None,
                     batch_size: int = 64) -> TextEncoder:
        """A :class:`TextEncoder` for a version, with its own preprocessing; checksum verified."""
        from collectors.encoding import TextEncoder

        self.verify(mv)
        pre = mv.preprocessing
        try:
            return TextEncoder.from_pretrained(mv.artifact_dir, classifier=classifier,
                                               pooling=pre.pooling, max_length=pre.max_length,
                                               truncation_side=pre.truncation_side,
                                               batch_size=batch_size, device=device)
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot load {mv.model_name} {mv.version}: {exc}") from exc
