"""Loaders for the labelled text data sets in ``../shared/data`` (tests, benchmarks, demo).

Each loader returns a :class:`TextDataset` (texts and string labels). Files are
read as their SOURCE.txt prescribes: tab-separated without quoting, CRLF
stripped, cp1252 C1 control characters kept as they are (they are part of
real traffic). Nothing here downloads anything.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.errors import ConfigError

__all__ = ["TextDataset", "banking77", "data_dir", "sms_spam", "sst2", "uci"]


@dataclass(frozen=True, slots=True)
class TextDataset:
    """Texts with string labels from one named source."""

    name: str
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, rng: np.random.Generator, *, replace: bool = False) -> TextDataset:
        """``n`` rows drawn uniformly (without replacement unless asked)."""
        idx = rng.choice(len(self.texts), size=n, replace=replace)
        return self.subset(idx)

    def subset(self, idx: np.ndarray | list[int]) -> TextDataset:
        """The rows at ``idx``, in that order."""
        return TextDataset(self.name, [self.texts[i] for i in idx], [self.labels[i] for i in idx])

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[TextDataset, TextDataset]:
        """A random split into ``fraction`` and the rest."""
        perm = rng.permutation(len(self.texts))
        cut = round(fraction * len(perm))
        return self.subset(perm[:cut]), self.subset(perm[cut:])


def data_dir(explicit: str | Path | None = None) -> Path:
    """The shared data directory: explicit, ``$SHIFTWATCH_DATA_DIR``, or ``../shared/data``."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("SHIFTWATCH_DATA_DIR"):
        candidates.append(Path(os.environ["SHIFTWATCH_DATA_DIR"]))
    root = Path(__file__).resolve().parent.parent
    candidates += [root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if (c / "uci_sentiment_labelled_sentences").is_dir():
            return c
    raise ConfigError(
        "shared data not found; pass --data DIR or set SHIFTWATCH_DATA_DIR "
        f"(looked in: {', '.join(str(c) for c in candidates)})"
    )


def _read_tsv(path: Path, *, label_first: bool, sep: str = "\t") -> tuple[list[str], list[str]]:
    if not path.exists():
        raise ConfigError(f"{path}: data file not found")
    texts: list[str] = []
    labels: list[str] = []
    with path.open("r", encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if label_first:
                label, _, text = line.partition(sep)
            else:
                text, _, label = line.rpartition(sep)
            if not text or not label:
                raise ConfigError(f"{path}: line {lineno}: expected text and label")
            texts.append(text.strip())
            labels.append(label.strip())
    return texts, labels


def uci(source: str, directory: str | Path | None = None) -> TextDataset:
    """UCI sentiment sentences: ``source`` is ``amazon``, ``yelp`` or ``imdb``; labels "0"/"1"."""
    files = {"amazon": "amazon_cells_labelled.txt", "yelp": "yelp_labelled.txt",
             "imdb": "imdb_labelled.txt"}
    if source not in files:
        raise ConfigError(f"unknown UCI source '{source}' (choose from {', '.join(files)})")
    path = data_dir(directory) / "uci_sentiment_labelled_sentences" / files[source]
    texts, labels = _read_tsv(path, label_first=False)
    return TextDataset(source, texts, labels)


def sst2(split: str = "train", directory: str | Path | None = None) -> TextDataset:
    """SST-2 sentences (lower-cased, PTB-tokenised): ``train``, ``dev`` or ``test``; labels "0"/"1"."""
    if split not in ("train", "dev", "test"):
        raise ConfigError(f"unknown SST-2 split '{split}'")
    path = data_dir(directory) / "sst2_sentences" / f"stsa.binary.{split}"
    texts, labels = _read_tsv(path, label_first=True, sep=" ")
    return TextDataset(f"sst2-{split}", texts, labels)


def sms_spam(directory: str | Path | None = None) -> TextDataset:
    """SMS Spam Collection; labels "ham"/"spam"."""
    path = data_dir(directory) / "sms_spam_collection" / "SMSSpamCollection"
    texts, labels = _read_tsv(path, label_first=True)
    return TextDataset("sms", texts, labels)


def banking77(split: str = "train", directory: str | Path | None = None) -> TextDataset:
    """BANKING77 support queries: ``train`` or ``test``; labels are intent names."""
    if split not in ("train", "test"):
        raise ConfigError(f"unknown BANKING77 split '{split}'")
    path = data_dir(directory) / "banking77" / f"{split}.csv"
    with path.open("r", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return TextDataset(f"banking77-{split}", [r["text"] for r in rows], [r["category"] for r in rows])
