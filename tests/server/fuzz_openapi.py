"""A seeded request generator over an app's own OpenAPI schema (used by test_fuzz.py).

Every operation of ``app.openapi()`` (and every ``Mount``, e.g. ``/reports``) is enumerated, so
routes added later are fuzzed without touching the test. Path and query parameters are drawn
from their schemas plus hostile strings; a declared request body is generated from its schema
(``$ref``s resolved), and bodies of routes that read raw JSON are drawn from the shapes the
sidecar knows (record, label, error, heartbeat fields) mutated with nasty values, plus raw
malformed bytes. Wrong methods, missing or wrong tokens and odd content types are mixed in.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

__all__ = ["Operation", "RequestSpec", "generate", "operations", "schedule"]

NASTY_STRINGS = ["", " ", "a", "m", "v1", "x" * 300, "\u0000", "\x7f", "\ud800", "..", "../../etc/passwd",
                 "%2e%2e%2f", "%00", "\U0001f600", "NaN", "null", "-1", "1e400", "2026-13-45",
                 "1764547200000000000", "<script>", "a/b", "?", "#", ";", "\\", "é"]
NASTY_VALUES: list[Any] = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30,
                           1e308, -1e308, 1e-320, 0.5, -0.0, 1764547200000000000, 1764547200,
                           "", "x" * 5000, "\u0000", [], [None], [0.5] * 3, [[1.0]], {}, {"a": 1},
                           "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59"]
FIELDS = {
    "records": ["event_id", "ts", "model_name", "model_version", "predicted_label", "confidence",
                "probs", "embedding", "n_tokens", "n_unk", "truncated", "n_chars", "latency_ms",
                "text", "text_sha256", "source", "label"],
    "labels": ["event_id", "label", "labeled_at", "source"],
    "errors": ["ts", "model_name", "model_version", "kind", "message", "source"],
    "heartbeat": ["collector_id", "ts", "model_name", "model_version", "queue_depth", "queue_capacity",
                  "dropped", "sink_failures", "spooled", "sent", "rejected", "evicted"],
}
RAW_BODIES = [b"", b"   ", b"null", b"[]", b"{", b'{"records": [1, 2', b"\xff\xfe\x00",
              b"[" * 5000 + b"]" * 5000, b'{"records": [NaN]}', b'{"dim": 1e999}',
              b'{"a": ' + b"9" * 5000 + b"}", b"\x00" * 64, b'{"records": "\xc3\x28"}']
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the app with its parameter and body schemas."""

    method: str
    path: str
    parameters: tuple[dict[str, Any], ...] = ()
    body_schema: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_input(self) -> bool:
        """Whether the client controls anything but method and headers (params or a body)."""
        return bool(self.parameters) or self.method in ("POST", "PUT", "PATCH")


@dataclass
class RequestSpec:
    """One generated request."""

    op: Operation
    method: str
    url: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def operations(app: Any) -> list[Operation]:
    """Every operation in ``app.openapi()`` plus a ``GET`` per mounted sub-app."""
    schema = app.openapi()
    out: list[Operation] = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if method.upper() not in [*METHODS, "HEAD", "OPTIONS"]:
                continue
            body = None
            content = (op.get("requestBody") or {}).get("content") or {}
            if "application/json" in content:
                body = _resolve(schema, content["application/json"].get("schema") or {})
            params = tuple(_resolve(schema, p) for p in op.get("parameters", []))
            out.append(Operation(method.upper(), path, params, body))
    for route in app.routes:
        if type(route).__name__ == "Mount":
            out.append(Operation("GET", route.path.rstrip("/") + "/{file_path}",
                                 ({"name": "file_path", "in": "path", "schema": {"type": "string"}},)))
    return out


def schedule(ops: list[Operation], total: int, *, fixed_quota: int = 25) -> list[Operation]:
    """``total`` operations to request, round-robin: an operation without client input (no
    parameters, no body: e.g. ``GET /metrics``) gets ``fixed_quota`` requests, every other
    operation an equal share of the rest."""
    fixed = [op for op in ops if not op.has_input]
    varied = [op for op in ops if op.has_input] or ops
    quota = {op.key: fixed_quota for op in fixed}
    rest = total - fixed_quota * len(fixed)
    for k, op in enumerate(varied):
        quota[op.key] = quota.get(op.key, 0) + rest // len(varied) + (1 if k < rest % len(varied) else 0)
    out: list[Operation] = []
    left = dict(quota)
    while len(out) < total:
        for op in ops:
            if left[op.key] > 0:
                left[op.key] -= 1
                out.append(op)
    return out


def _resolve(root: dict[str, Any], node: Any, depth: int = 0) -> Any:
    if depth > 20:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target.get(part, {})
            return _resolve(root, target, depth + 1)
        return {k: _resolve(root, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(root, v, depth + 1) for v in node]
    return node


def _from_schema(rng: random.Random, schema: dict[str, Any], depth: int = 0) -> Any:
    """A value that usually fits ``schema`` and sometimes does not."""
    if rng.random() < 0.15 or depth > 6:
        return rng.choice(NASTY_VALUES)
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return _from_schema(rng, rng.choice(schema[combo]), depth + 1)
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type")
    if typ == "string":
        return rng.choice([*NASTY_STRINGS, "m", "v1", "ok", "2026-01-01T00:00:00Z"])
    if typ == "integer":
        return rng.choice([0, 1, 5, 100, -1, 10_000, 10_001, 2**40])
    if typ == "number":
        return rng.choice([0.0, 0.5, 1.0, -1.5, 1e300])
    if typ == "boolean":
        return rng.random() < 0.5
    if typ == "array":
        item = schema.get("items") or {}
        return [_from_schema(rng, item, depth + 1) for _ in range(rng.randint(0, 4))]
    if typ == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        obj = {k: _from_schema(rng, v, depth + 1) for k, v in props.items()
               if k in required or rng.random() < 0.7}
        if rng.random() < 0.1:
            obj["unexpected_field"] = rng.choice(NASTY_VALUES)
        return obj
    return rng.choice(NASTY_VALUES)


def _good(kind: str, rng: random.Random, i: int) -> dict[str, Any]:
    ts = (T0 + timedelta(seconds=rng.randrange(10**6))).isoformat()
    model = rng.choice(["m", "m2", "x" * rng.choice([1, 250])])
    if kind == "labels":
        return {"event_id": f"fz-{rng.randrange(500)}", "label": rng.choice(["pos", "neg"])}
    if kind == "errors":
        return {"ts": ts, "model_name": model, "model_version": "v1", "kind": "model", "message": "boom"}
    if kind == "heartbeat":
        return {"collector_id": f"c{rng.randrange(5)}", "ts": ts, "model_name": model,
                "model_version": "v1", "queue_depth": 1, "queue_capacity": 10, "dropped": 0,
                "sink_failures": 0, "spooled": 0, "sent": i, "rejected": 0, "evicted": 0}
    c = rng.random()
    dim = rng.choice([None, 4, 4, 8])
    rec: dict[str, Any] = {"event_id": f"fz-{rng.randrange(10**9)}", "ts": ts, "model_name": model,
                           "model_version": rng.choice(["v1", "v2"]), "predicted_label": "pos",
                           "confidence": c, "probs": [1 - c, c], "n_tokens": 10, "n_unk": 0,
                           "truncated": False, "n_chars": 40, "latency_ms": 1.0}
    if dim:
        rec["embedding"] = [rng.random() for _ in range(dim)]
    return rec


def _raw_body(rng: random.Random, op: Operation) -> Any:
    """A JSON value for a route that reads its body itself."""
    kind = next((k for k in ("records", "labels", "errors", "heartbeat") if k.rstrip("s") in op.path),
                rng.choice(list(FIELDS)))
    if "embedding-dim" in op.path:
        return rng.choice([{"dim": rng.choice([1, 4, 384, 0, -1, 65_537, 2**63])},
                           {"dim": rng.choice(NASTY_VALUES)}, {"dim": 4, "x": 1}, {}, [4], 4])
    if kind == "heartbeat":
        item = _good(kind, rng, rng.randrange(100))
        _mutate(rng, item, FIELDS[kind])
        return item
    items = [_good(kind, rng, i) for i in range(rng.randint(1, 6))]
    for _ in range(rng.randint(0, 2)):
        target = rng.randrange(len(items))
        if rng.random() < 0.1:
            items[target] = rng.choice(NASTY_VALUES)
        else:
            _mutate(rng, items[target], FIELDS[kind])
    if rng.random() < 0.1 and items:
        items.append(items[0])  # a repeated id
    wrapper = {"records": "records", "labels": "labels", "errors": "errors"}.get(kind, "records")
    return rng.choice([{wrapper: items}] * 8 + [items, {wrapper: items, "extra": 1}, {wrapper: None},
                                                {wrapper: {}}, {"other": items}])


def _mutate(rng: random.Random, item: Any, names: list[str]) -> None:
    if not isinstance(item, dict):
        return
    roll = rng.random()
    if roll < 0.7:
        item[rng.choice([*names, "unknown_field"])] = rng.choice(NASTY_VALUES + NASTY_STRINGS)
    elif roll < 0.9:
        item.pop(rng.choice(names), None)
    else:
        item["embedding"] = [rng.random() for _ in range(rng.choice([0, 3, 5, 385]))]


def _dump(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b'{"broken": '


def _q(text: str) -> str:
    """Percent-encode ``text`` (lone surrogates as their raw UTF-8 bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _path_value(rng: random.Random, schema: dict[str, Any]) -> str:
    if rng.random() < 0.6:
        value = _from_schema(rng, schema)
        text = value if isinstance(value, str) else json.dumps(value)
    else:
        text = rng.choice(NASTY_STRINGS)
    return _q(text) or "%20"


def generate(rng: random.Random, op: Operation, token: str) -> RequestSpec:
    """One request for ``op``: mostly well-formed around its schema, often hostile."""
    path = op.path
    query: list[str] = []
    for p in op.parameters:
        schema = p.get("schema") or {}
        if p.get("in") == "path":
            path = path.replace("{" + p["name"] + "}", _path_value(rng, schema))
        elif p.get("in") == "query" and rng.random() < 0.8:
            for _ in range(2 if rng.random() < 0.1 else 1):  # a repeated parameter now and then
                value = _from_schema(rng, schema)
                text = value if isinstance(value, str) else json.dumps(value)
                query.append(f"{_q(p['name'])}={_q(text)}")
    if rng.random() < 0.05:
        query.append(f"{rng.choice(['x', 'limit', 'model_name'])}={_q(rng.choice(NASTY_STRINGS))}")
    url = path + ("?" + "&".join(query) if query else "")
    method = op.method if rng.random() < 0.95 else rng.choice(METHODS)
    headers = {"content-type": "application/json"}
    roll = rng.random()
    if roll < 0.92:
        headers["authorization"] = f"Bearer {token}"
    elif roll < 0.96:
        headers["authorization"] = rng.choice(["Bearer wrong", "Basic abc", "Bearer ", "bearer " + token])
    if rng.random() < 0.03:
        headers["content-type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", ""])
    content: bytes | None = None
    if method in ("POST", "PUT", "PATCH"):
        if rng.random() < 0.08:
            content = rng.choice(RAW_BODIES)
        elif op.body_schema is not None:
            content = _dump(_from_schema(rng, op.body_schema))
        else:
            content = _dump(_raw_body(rng, op))
    return RequestSpec(op, method, url, content, headers)
