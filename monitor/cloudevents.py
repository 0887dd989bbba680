"""Inference-logger CloudEvents (KServe, Seldon Core 1.x) → text-only prediction records.

Pure: no I/O, no store. :mod:`monitor.api.cloudevents` is the HTTP edge that uses it.

A serving stack's payload logger sends each inference twice — the request and its response —
as two CloudEvents sharing one ``id``:

- KServe's agent (``logger: {mode: all, url: ...}``): ``type``
  ``org.kubeflow.serving.inference.request`` / ``.response``, binary mode, with the extension
  attributes ``inferenceservicename``, ``namespace``, ``component``, ``endpoint`` (and
  ``metadata``, ``annotations``, which are ignored);
- Seldon Core 1.x's executor: ``io.seldon.serving.inference.request`` / ``.response``, binary
  mode, with ``inferenceservicename`` (the SeldonDeployment), ``namespace``, ``endpoint`` (the
  predictor), ``modelid``, ``requestid``, ``protocol``.

:func:`parse_binary` / :func:`parse_structured` turn one HTTP message into a
:class:`CloudEvent`; :func:`request_texts` and :func:`response_outputs` read the data of each
half (v1 ``instances``/``predictions``, v2 / Open Inference Protocol ``inputs``/``outputs``,
Seldon ``data.ndarray``/``strData``); :class:`PairBuffer` joins the halves by id in either
order with a bounded wait and bounded memory; :func:`pair_records` makes the records.
Every problem raises :class:`EventError` naming the attribute or data field.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic_core

from monitor.errors import ShiftwatchError

__all__ = [
    "CloudEvent",
    "EventError",
    "Join",
    "Output",
    "PairBuffer",
    "pair_records",
    "parse_binary",
    "parse_structured",
    "request_texts",
    "response_outputs",
]

Kind = Literal["request", "response"]

#: ce-type → (stack, half)
EVENT_TYPES: dict[str, tuple[str, Kind]] = {
    "org.kubeflow.serving.inference.request": ("kserve", "request"),
    "org.kubeflow.serving.inference.response": ("kserve", "response"),
    "io.seldon.serving.inference.request": ("seldon", "request"),
    "io.seldon.serving.inference.response": ("seldon", "response"),
}
_REQUIRED_ATTRS = ("id", "source", "specversion", "type")
_EXTENSIONS = ("inferenceservicename", "namespace", "component", "endpoint", "modelid", "requestid")
_MAX_ID = 180  # event ids are "<ce-id>#<i>" and the record contract allows 200 characters
_MAX_TEXT = 1_000_000


class EventError(ShiftwatchError):
    """A CloudEvent that cannot be used; ``field`` names the attribute or data field."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One inference-logger event: its context attributes and its parsed JSON data."""

    id: str
    type: str
    source: str
    stack: str  # "kserve" | "seldon"
    kind: Kind
    time: datetime | None
    data: Any
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        """The inference service (KServe) or SeldonDeployment name; ``""`` when not sent."""
        return self.extensions.get("inferenceservicename", "")

    @property
    def slice(self) -> str | None:
        """The record's ``source`` tag: ``endpoint`` (KServe default/canary, Seldon predictor),
        else ``component``; None when neither is sent."""
        return self.extensions.get("endpoint") or self.extensions.get("component") or None


@dataclass(frozen=True, slots=True)
class Output:
    """The model's answer for one input: probabilities in label order, or a label and its score."""

    probs: tuple[float, ...] | None
    label: str | None = None
    score: float | None = None


# -- parsing the HTTP message ------------------------------------------------------------------
def _ce_time(value: Any, field_name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError(field_name, "expected an RFC 3339 timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go writes nanoseconds; Python takes at most microseconds
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EventError(field_name, f"not an RFC 3339 timestamp: {value[:60]!r}") from exc
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _event(attrs: Mapping[str, Any], data: Any, prefix: str) -> CloudEvent:
    for name in _REQUIRED_ATTRS:
        value = attrs.get(name)
        if not isinstance(value, str) or not value.strip():
            raise EventError(f"{prefix}{name}", "required CloudEvents attribute is missing or empty")
    if attrs["specversion"] not in ("1.0", "0.3"):
        raise EventError(f"{prefix}specversion", f"unsupported version {attrs['specversion']!r}")
    ce_type = str(attrs["type"])
    if ce_type not in EVENT_TYPES:
        raise EventError(f"{prefix}type", f"unsupported type {ce_type[:100]!r}; expected one of "
                                          + ", ".join(sorted(EVENT_TYPES)))
    ce_id = str(attrs["id"]).strip()
    if len(ce_id) > _MAX_ID:
        raise EventError(f"{prefix}id", f"longer than {_MAX_ID} characters")
    stack, kind = EVENT_TYPES[ce_type]
    ext = {k: str(attrs[k]) for k in _EXTENSIONS if isinstance(attrs.get(k), str) and attrs[k]}
    return CloudEvent(id=ce_id, type=ce_type, source=str(attrs["source"]), stack=stack, kind=kind,
                      time=_ce_time(attrs.get("time"), f"{prefix}time"), data=data, extensions=ext)


def _json_data(body: bytes, field_name: str) -> Any:
    if not body.strip():
        raise EventError(field_name, "the event carries no data")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(field_name, f"not valid UTF-8 (byte {exc.start})", status=400) from exc
    try:  # pydantic-core's parser bounds nesting depth (json.loads would hit RecursionError)
        return pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:  # syntax, NaN/Infinity, lone surrogate escapes, nesting depth
        raise EventError(field_name, f"not valid JSON: {str(exc)[:200]}", status=400) from exc


def parse_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A binary-mode event: attributes in ``ce-*`` headers (case-insensitive), data in the body.

    The body must be JSON (``Content-Type`` ``application/json`` or absent, as the loggers send).
    """
    attrs = {k.lower()[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
    content_type = headers.get("content-type", headers.get("Content-Type", "")) or ""
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise EventError("content-type", f"data must be JSON, got {media!r}", status=415)
    return _event(attrs, _json_data(body, "data"), "ce-")


def parse_structured(body: bytes) -> CloudEvent:
    """A structured-mode event (``application/cloudevents+json``): one JSON object holding the
    attributes and ``data`` (JSON) or ``data_base64`` (base64 of JSON)."""
    doc = _json_data(body, "<event>")
    if not isinstance(doc, dict):
        raise EventError("<event>", "a structured CloudEvent must be a JSON object")
    if "data" in doc:
        data = doc["data"]
        if isinstance(data, str):  # a JSON document carried as a string
            data = _json_data(data.encode("utf-8"), "data")
    elif "data_base64" in doc:
        import base64
        import binascii

        try:
            raw = base64.b64decode(str(doc["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EventError("data_base64", "not valid base64") from exc
        data = _json_data(raw, "data_base64")
    else:
        raise EventError("data", "the event carries no data")
    media = str(doc.get("datacontenttype", "application/json")).split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise EventError("datacontenttype", f"data must be JSON, got {media!r}", status=415)
    return _event(doc, data, "")


# -- reading the data --------------------------------------------------------------------------
def _text(value: Any, field_name: str) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("text", value.get("sequence", value.get("inputs")))
    if not isinstance(value, str):
        raise EventError(field_name, "expected a text string (or [text], or {\"text\": ...})")
    if not value:
        raise EventError(field_name, "the text is empty")
    if len(value) > _MAX_TEXT:
        raise EventError(field_name, f"longer than {_MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventError(field_name, "not valid Unicode (lone surrogate)") from exc
    return value


def _flatten(values: Any) -> list[Any]:
    if not isinstance(values, list):
        return [values]
    out: list[Any] = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def _items(data: Any, key: str) -> list[Any]:
    items = data[key]
    if not isinstance(items, list):
        raise EventError(f"data.{key}", "expected a list")
    if not items:
        raise EventError(f"data.{key}", "is empty")
    return items


def _v2_tensors(data: Any, key: str) -> list[dict[str, Any]]:
    tensors = _items(data, key)
    for i, t in enumerate(tensors):
        if not isinstance(t, dict) or not isinstance(t.get("datatype"), str) or "data" not in t:
            raise EventError(f"data.{key}[{i}]", "expected a tensor {name, shape, datatype, data}")
    return tensors


def request_texts(data: Any) -> list[str]:
    """The input texts of a request: v1 ``instances``, v2 ``inputs`` (the ``BYTES`` tensor),
    or Seldon ``data.ndarray`` / ``strData``."""
    if not isinstance(data, dict):
        raise EventError("data", "expected a JSON object")
    if "instances" in data:
        return [_text(x, f"data.instances[{i}]") for i, x in enumerate(_items(data, "instances"))]
    if "inputs" in data:
        tensors = [t for t in _v2_tensors(data, "inputs") if t["datatype"].upper() == "BYTES"]
        if len(tensors) > 1:
            tensors = [t for t in tensors if t.get("name") in ("text", "texts", "input", "args")][:1]
        if len(tensors) != 1:
            raise EventError("data.inputs", "expected exactly one BYTES tensor holding the texts "
                                            "(or one named 'text')")
        values = _flatten(tensors[0]["data"])
        if not values:
            raise EventError("data.inputs[].data", "is empty")
        return [_text(x, f"data.inputs[].data[{i}]") for i, x in enumerate(values)]
    if "strData" in data:
        return [_text(data["strData"], "data.strData")]
    if isinstance(data.get("data"), dict) and "ndarray" in data["data"]:
        return [_text(x, f"data.data.ndarray[{i}]") for i, x in enumerate(_items(data["data"], "ndarray"))]
    raise EventError("data", "no inputs: expected 'instances' (v1), 'inputs' (v2) or Seldon "
                             "'data.ndarray' / 'strData'")


def _number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(field_name, "expected a finite number")
    return float(value)


def _probs(values: Sequence[Any], field_name: str, labels: Sequence[str]) -> tuple[float, ...]:
    """Probabilities in label order; a row that is not a distribution is taken as logits."""
    if len(values) != len(labels):
        raise EventError(field_name, f"{len(values)} scores, but the model version has "
                                     f"{len(labels)} labels ({', '.join(labels)})")
    row = [_number(v, f"{field_name}[{j}]") for j, v in enumerate(values)]
    if all(0.0 <= p <= 1.0 for p in row) and abs(sum(row) - 1.0) <= 1e-3:
        total = sum(row)
        return tuple(p / total for p in row)
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return tuple(e / total for e in exps)


def _output(value: Any, field_name: str, labels: Sequence[str]) -> Output:
    if isinstance(value, list):
        return Output(_probs(value, field_name, labels))
    if isinstance(value, dict):
        if "label" in value and "score" in value:  # the transformers pipeline's own shape
            label = value["label"]
            if not isinstance(label, str) or label not in labels:
                raise EventError(f"{field_name}.label", f"{str(label)[:60]!r} is not a label of the "
                                                        f"model version ({', '.join(labels)})")
            score = _number(value["score"], f"{field_name}.score")
            if not 0.0 <= score <= 1.0:
                raise EventError(f"{field_name}.score", "expected a probability in [0, 1]")
            return Output(None, label, score)
        by_key = {str(k): v for k, v in value.items()}  # {"label or index": probability}
        keys = [lab if lab in by_key else str(j) for j, lab in enumerate(labels)]
        if set(keys) != set(by_key):
            raise EventError(field_name, "keys must be the model's labels or class indices "
                                         f"({', '.join(labels)})")
        return Output(_probs([by_key[k] for k in keys], field_name, labels))
    raise EventError(field_name, "a bare class id or label carries no probability; log "
                                 "probabilities (e.g. KServe huggingface --return_probabilities)")


def response_outputs(data: Any, labels: Sequence[str]) -> list[Output]:
    """The model's answers in a response: v1 ``predictions``, v2 ``outputs`` (the floating-point
    tensor of shape [n, k]), or Seldon ``data.ndarray``; ``labels`` are the version's names."""
    if not labels:
        raise EventError("data", "the model version has no label names registered")
    if not isinstance(data, dict):
        raise EventError("data", "expected a JSON object")
    if "predictions" in data:
        return [_output(x, f"data.predictions[{i}]", labels)
                for i, x in enumerate(_items(data, "predictions"))]
    if "outputs" in data:
        tensors = [t for t in _v2_tensors(data, "outputs") if t["datatype"].upper().startswith("FP")]
        if len(tensors) != 1:
            raise EventError("data.outputs", "expected exactly one FP16/FP32/FP64 tensor of class "
                                             "probabilities or logits, shape [n, k]")
        t = tensors[0]
        flat = _flatten(t["data"])
        k = len(labels)
        shape = t.get("shape")
        if not isinstance(shape, list) or not shape or math.prod(int(s) for s in shape) != len(flat) \
                or int(shape[-1]) != k or len(flat) == 0:
            raise EventError("data.outputs[].shape", f"expected [n, {k}] matching the data, got {shape}")
        return [Output(_probs(flat[i:i + k], f"data.outputs[].data[{i // k}]", labels))
                for i in range(0, len(flat), k)]
    seldon = data.get("data")
    if isinstance(seldon, dict) and "ndarray" in seldon:
        names = seldon.get("names")
        rows = _items(seldon, "ndarray")
        if isinstance(names, list) and sorted(map(str, names)) == sorted(labels) and names != list(labels):
            order = [list(map(str, names)).index(lab) for lab in labels]  # columns named by label
            rows = [[r[j] for j in order] if isinstance(r, list) and len(r) == len(order) else r
                    for r in rows]
        return [_output(r, f"data.data.ndarray[{i}]", labels) for i, r in enumerate(rows)]
    raise EventError("data", "no outputs: expected 'predictions' (v1), 'outputs' (v2) or Seldon "
                             "'data.ndarray'")


# -- joining the halves ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Half:
    """One parsed half waiting for the other (what :class:`PairBuffer` keeps)."""

    event: CloudEvent
    texts: list[str] | None = None
    outputs: list[Output] | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """What :meth:`PairBuffer.offer` did: ``pending``, ``joined`` (with both halves) or
    ``duplicate`` (this id was already joined or this half is already waiting)."""

    status: Literal["pending", "joined", "duplicate"]
    request: Half | None = None
    response: Half | None = None


class PairBuffer:
    """Joins request and response halves by ``(model, id)`` in either order.

    A half waits at most ``wait_s`` seconds, and at most ``max_pending`` halves wait at once
    (the oldest go first); every half dropped without its partner is counted in
    :attr:`unmatched` by kind and reported to ``on_unmatched(kind)``. The ids of the last
    ``remember`` joined pairs are kept so that a re-sent event is answered as a duplicate
    instead of waiting for a partner that already came. Thread-safe.
    """

    def __init__(self, *, wait_s: float = 60.0, max_pending: int = 10_000, remember: int = 100_000,
                 clock: Callable[[], float] = time.monotonic,
                 on_unmatched: Callable[[str], None] | None = None) -> None:
        if wait_s <= 0 or max_pending <= 0 or remember < 0:
            raise ValueError("wait_s and max_pending must be positive, remember non-negative")
        self.wait_s = wait_s
        self.max_pending = max_pending
        self.remember = remember
        self._clock = clock
        self._on_unmatched = on_unmatched
        self._lock = threading.Lock()
        self._pending: OrderedDict[tuple[str, str], tuple[float, Half]] = OrderedDict()
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.unmatched: dict[str, int] = {"request": 0, "response": 0}

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _evict(self, now: float) -> None:
        while self._pending:
            key, (at, half) = next(iter(self._pending.items()))
            if now - at < self.wait_s and len(self._pending) <= self.max_pending:
                break
            del self._pending[key]
            self.unmatched[half.event.kind] += 1
            if self._on_unmatched is not None:
                self._on_unmatched(half.event.kind)

    def sweep(self) -> int:
        """Drop the halves that waited too long; return how many halves still wait."""
        with self._lock:
            self._evict(self._clock())
            return len(self._pending)

    def offer(self, model: str, half: Half) -> Join:
        """Add one half; return the pair when its partner was waiting."""
        key = (model, half.event.id)
        with self._lock:
            now = self._clock()
            self._evict(now)
            if key in self._done:
                return Join("duplicate")
            waiting = self._pending.get(key)
            if waiting is not None:
                other = waiting[1]
                if other.event.kind == half.event.kind:
                    return Join("duplicate")
                del self._pending[key]
                self._done[key] = None
                while len(self._done) > self.remember:
                    self._done.popitem(last=False)
                req, resp = (half, other) if half.event.kind == "request" else (other, half)
                return Join("joined", req, resp)
            self._pending[key] = (now, half)
            self._evict(now)
            return Join("pending")

    def put_back(self, model: str, join: Join) -> None:
        """Undo a join whose records could not be stored: forget the id and let the half that
        was waiting wait again (a retry of the other half then completes the pair)."""
        assert join.request is not None and join.response is not None
        key = (model, join.request.event.id)
        with self._lock:
            self._done.pop(key, None)
            self._pending[key] = (self._clock(), join.request)


# -- records -----------------------------------------------------------------------------------
def pair_records(join: Join, *, model_name: str, model_version: str, labels: Sequence[str],
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """One text-only prediction record per input of a joined pair.

    ``event_id`` is the CloudEvent id (``<id>#<i>`` when the request held several inputs), ``ts``
    the request's ``time``, ``latency_ms`` the time between the two events shared equally.
    """
    assert join.request is not None and join.response is not None
    texts = join.request.texts or []
    outputs = join.response.outputs or []
    if len(texts) != len(outputs):
        raise EventError("data", f"the response holds {len(outputs)} outputs but its request "
                                 f"(id {join.request.event.id!r}) holds {len(texts)} inputs")
    req, resp = join.request.event, join.response.event
    ts = req.time or resp.time or now or datetime.now(UTC)
    latency = None
    if req.time is not None and resp.time is not None and resp.time >= req.time:
        latency = (resp.time - req.time).total_seconds() * 1000.0 / len(texts)
    records: list[dict[str, Any]] = []
    for i, (text, out) in enumerate(zip(texts, outputs, strict=True)):
        if out.probs is not None:
            k = max(range(len(out.probs)), key=out.probs.__getitem__)
            label, confidence, probs = labels[k], out.probs[k], list(out.probs)
        else:
            assert out.label is not None and out.score is not None
            label, confidence, probs = out.label, out.score, None
        records.append({
            "event_id": req.id if len(texts) == 1 else f"{req.id}#{i}",
            "ts": ts, "model_name": model_name, "model_version": model_version,
            "predicted_label": label, "confidence": min(max(confidence, 0.0), 1.0), "probs": probs,
            "latency_ms": latency, "text": text,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "n_chars": len(text), "source": req.slice or resp.slice,
        })
    return records
