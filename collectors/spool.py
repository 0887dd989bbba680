"""A bounded on-disk spool of batches waiting to be re-sent.

Each batch is one file ``<ns>-<seq>-<n>.<kind>.json`` holding the exact JSON
body to post (``kind`` is ``predictions`` or ``errors``, ``n`` its item
count). Files are written as ``.tmp`` and renamed, so a crash never leaves a
half-written batch that would be sent; leftover ``.tmp`` files are removed on
open. Batches are read back oldest first. When the spool would exceed
``max_bytes`` the oldest batches are deleted and their items counted in
:attr:`Spool.dropped`.

The spool directory is created 0700 and its files 0600 (they hold prediction
records, possibly raw text). A spool directory belongs to one sink of one
process at a time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpooledBatch", "private_dir", "write_private"]


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; return it."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file created 0600 (never readable by others, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One spooled batch file."""

    path: Path
    kind: str
    n_items: int

    def read(self) -> bytes:
        """The JSON body exactly as it was spooled."""
        return self.path.read_bytes()


def _parse(path: Path) -> SpooledBatch | None:
    stem, _, kind = path.name.removesuffix(".json").rpartition(".")
    parts = stem.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or not kind:
        return None
    return SpooledBatch(path, kind, int(parts[2]))


class Spool:
    """Bounded directory of JSON batches, oldest first."""

    def __init__(self, directory: str | Path, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = private_dir(directory)
        self.max_bytes = max_bytes
        self.dropped = 0  # items deleted to respect max_bytes
        self._seq = itertools.count()
        self._lock = threading.Lock()
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    def batches(self) -> list[SpooledBatch]:
        """Spooled batches, oldest first."""
        found = (_parse(p) for p in self.directory.glob("*.json"))
        return sorted((b for b in found if b is not None), key=lambda b: _order(b.path))

    def size_bytes(self) -> int:
        """Bytes currently spooled."""
        return sum(_size(b.path) for b in self.batches())

    def pending_items(self) -> int:
        """Items (records or errors) currently spooled."""
        return sum(b.n_items for b in self.batches())

    def put(self, kind: str, body: bytes, n_items: int) -> Path | None:
        """Spool one batch atomically; return its path, or None if it alone exceeds ``max_bytes``."""
        if not kind.isidentifier():
            raise ValueError(f"bad spool kind {kind!r}")
        with self._lock:
            if len(body) > self.max_bytes:
                self.dropped += n_items
                return None
            name = f"{time.time_ns():020d}-{next(self._seq):09d}-{n_items}.{kind}.json"
            final = self.directory / name
            tmp = final.with_name(name + ".tmp")
            write_private(tmp, body)
            tmp.replace(final)
            self._enforce_limit()
            return final

    def would_evict(self, n_bytes: int) -> bool:
        """Whether spooling ``n_bytes`` more would delete older batches to respect ``max_bytes``."""
        return self.size_bytes() + n_bytes > self.max_bytes

    def remove(self, batch: SpooledBatch) -> None:
        """Delete a batch after it was delivered."""
        batch.path.unlink(missing_ok=True)

    def _enforce_limit(self) -> None:
        batches = self.batches()
        total = sum(_size(b.path) for b in batches)
        for b in batches:
            if total <= self.max_bytes:
                break
            total -= _size(b.path)
            b.path.unlink(missing_ok=True)
            self.dropped += b.n_items


def _order(path: Path) -> tuple[int, int]:
    ns, seq, _ = path.name.split("-", 2)
    return int(ns), int(seq)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
