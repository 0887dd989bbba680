"""The review queue round trip: export rows for labelling, import the labels back.

:func:`export_queue` writes queued rows (by default the ``pending`` ones) as CSV or JSON Lines
(chosen by the file suffix) with what a labeller needs — text (when it was logged), predicted
label, confidence, why the row was picked — and an empty ``label`` column. :func:`import_labels`
reads such a file back: rows with a non-empty ``label`` become delayed ground truth in
``labels`` (:meth:`monitor.store.Store.insert_labels`) and their queue rows turn ``labeled``;
rows left blank are skipped. Importing the same file twice changes nothing the second time.

A label outside the label set of the model version that made the prediction is *out of scope*
(e.g. a reviewer's ``refund_request`` for a sentiment model). It is stored like any other
label — kept as out-of-scope evidence, which the promotion guard reads
(:func:`monitor.retrain.guard.oos_evidence`) — never used as a class label for training or
scoring, and reported in :class:`ImportResult` (count and values).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from collectors.codec import parse_json
from monitor.errors import ConfigError, SchemaError
from monitor.store import Store

__all__ = ["EXPORT_COLUMNS", "ImportResult", "export_queue", "import_labels"]

EXPORT_COLUMNS = ("event_id", "model_name", "model_version", "run_id", "reason", "score", "status",
                  "predicted_label", "confidence", "text", "text_sha256", "source", "label")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: labels stored, blank rows skipped, and how many stored labels were out of scope.

    ``out_of_scope`` maps each label outside its version's label set to how many rows got it.
    """

    labeled: int
    skipped: int
    out_of_scope: dict[str, int] = field(default_factory=dict)

    @property
    def n_out_of_scope(self) -> int:
        """Rows whose label lies outside the label set."""
        return sum(self.out_of_scope.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"labeled": self.labeled, "skipped": self.skipped, "n_out_of_scope": self.n_out_of_scope,
                "out_of_scope": dict(self.out_of_scope)}

    def describe(self) -> str:
        """One line for the CLI."""
        line = f"imported {self.labeled} label(s); {self.skipped} row(s) left blank"
        if self.out_of_scope:
            values = ", ".join(f"{k!r} x{v}" for k, v in self.out_of_scope.items())
            line += (f"; {self.n_out_of_scope} label(s) outside the model's label set, kept as out-of-scope "
                     f"evidence (not used as classes): {values}")
        return line


def _out_of_scope(store: Store, picked: list[tuple[int, str, str]]) -> dict[str, int]:
    """Labels of ``picked`` outside the label set of the version that made the prediction (value -> rows)."""
    sets: dict[str, set[str]] = {}
    for r in store.fetch_dicts("promotion_label_sets", {"ids": [eid for _, eid, _ in picked]}):
        pre = r.get("preprocessing")
        if isinstance(pre, str):
            try:
                pre = json.loads(pre)
            except ValueError:
                pre = None
        labels = (pre or {}).get("labels") if isinstance(pre, dict) else None
        if labels:  # a version not in the registry (or without labels) has no known label set
            sets[str(r["event_id"])] = {str(x) for x in labels}
    counts: dict[str, int] = {}
    for _, eid, label in picked:
        if eid in sets and label not in sets[eid]:
            counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ConfigError(f"{path}: use a .csv or .jsonl file for the review queue")


def export_queue(store: Store, path: str | Path, *, model_name: str | None = None,
                 status: str | None = "pending") -> int:
    """Write the queue's rows (optionally one model / status; ``None`` = all) to ``path``."""
    out = Path(path)
    fmt = _format(out)
    rows = store.fetch_dicts("ops_review_export", {"model_name": model_name, "status": status})
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                for r in rows:
                    writer.writerow({k: "" if r.get(k) is None else r[k] for k in EXPORT_COLUMNS})
            else:
                for r in rows:
                    fh.write(json.dumps({k: r.get(k) for k in EXPORT_COLUMNS}, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the review export: {exc}") from exc
    return len(rows)


def _read(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a CSV (header on line 1) or JSON Lines file."""
    fmt = _format(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if fmt == "csv":
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        if "event_id" not in header or "label" not in header:
            raise ConfigError(f"{path}:1: the header needs 'event_id' and 'label' columns")
        return [(reader.line_num, dict(row)) for row in reader]
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line, row=i)
        except SchemaError as exc:  # the record codec's one JSON parser (depth, huge numbers)
            raise ConfigError(f"{path}:{i}: {exc.errors[0].message}") from exc
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{i}: expected a JSON object")
        rows.append((i, obj))
    return rows


def import_labels(store: Store, path: str | Path, *, source: str = "review") -> ImportResult:
    """Store the labels filled in an exported review file (see module docstring).

    Every row is checked before anything is written: a missing ``event_id``, a label that is
    not a string, or an event id that is not a stored prediction fails the whole import with
    :class:`ConfigError` naming the file and line.
    """
    p = Path(path)
    rows = _read(p)
    picked: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    skipped = 0
    for line, row in rows:
        eid, label = row.get("event_id"), row.get("label")
        if not isinstance(eid, str) or not eid.strip():
            problems.append(f"{p}:{line}: field 'event_id': required string is missing")
            continue
        if label is None or (isinstance(label, str) and not label.strip()):
            skipped += 1
            continue
        if not isinstance(label, str):
            problems.append(f"{p}:{line}: field 'label': expected a string, got {type(label).__name__}")
            continue
        if eid.strip() in seen:
            problems.append(f"{p}:{line}: field 'event_id': repeats line {seen[eid.strip()]}")
            continue
        seen[eid.strip()] = line
        picked.append((line, eid.strip(), label.strip()))
    if picked:
        known = {r[0] for r in store.execute("ops_review_known", {"ids": [eid for _, eid, _ in picked]})}
        problems.extend(f"{p}:{line}: field 'event_id': no stored prediction '{eid}'"
                        for line, eid, _ in picked if eid not in known)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    if not picked:
        return ImportResult(0, skipped)
    now = datetime.now(UTC)
    try:
        store.insert_labels([{"event_id": eid, "label": label, "labeled_at": now, "source": source}
                             for _, eid, label in picked], source=str(p))
    except SchemaError as exc:  # the codec's label rules (length, control characters)
        first = exc.errors[0]
        raise ConfigError(f"{p}:{picked[first.row][0]}: field '{first.field}': {first.message}") from exc
    table = pa.table({"event_id": pa.array([eid for _, eid, _ in picked], pa.string()),
                      "label": pa.array([label for _, _, label in picked], pa.string()),
                      "labeled_at": pa.array([now] * len(picked), pa.timestamp("us", tz="UTC"))})
    with store.transaction(), store.registered("_labeled", table):
        store.execute("ops_review_mark_labeled")
    return ImportResult(len(picked), skipped, _out_of_scope(store, picked))
