"""Bounded request bodies: size (413), UTF-8 and JSON (400), batch shape and size (422/413).

The body is read on the event loop with a running byte count (a lying or absent
``Content-Length`` cannot get past the bound); decoding and parsing happen in the caller's
worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pydantic_core
from fastapi import Request

from monitor.api.errors import ApiError
from monitor.errors import RecordError

MAX_STRING = 10_000

__all__ = ["check_fields", "parse_json", "read_body", "surrogate_errors", "take_batch"]


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or a 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body of {int(declared)} bytes exceeds the limit of {limit}")
        except ValueError as exc:
            raise ApiError(400, "invalid Content-Length header") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """Decode UTF-8 strictly and parse JSON; 400 naming the problem's position.

    Parsing uses pydantic-core's Rust JSON parser (about 3x the standard library on
    embedding-heavy batches); ``NaN``/``Infinity`` literals become floats on purpose, so the
    record validator reports them with their row and field.
    """
    if not body.strip():
        raise ApiError(400, "empty request body; expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start}): {exc.reason}") from exc
    try:
        return pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError as exc:  # syntax, lone surrogate escapes, numbers out of range, nesting depth
        raise ApiError(400, f"invalid JSON: {str(exc)[:300]}") from exc


def take_batch(payload: Any, key: str, limit: int) -> list[Mapping[str, Any]]:
    """``payload[key]`` as a non-empty list of objects of at most ``limit`` items."""
    if not isinstance(payload, dict):
        raise ApiError(422, f'expected a JSON object {{"{key}": [...]}}, got {_json_type(payload)}')
    unknown = sorted(k for k in payload if k != key)
    if unknown:
        raise ApiError(422, f"unknown top-level field '{unknown[0]}'; expected only '{key}'")
    if key not in payload:
        raise ApiError(422, f"missing field '{key}'")
    items = payload[key]
    if not isinstance(items, list):
        raise ApiError(422, f"'{key}' must be a list, got {_json_type(items)}")
    if not items:
        raise ApiError(422, f"'{key}' is empty; send at least one item")
    if len(items) > limit:
        raise ApiError(413, f"batch of {len(items)} {key} exceeds the limit of {limit}")
    bad = [RecordError(i, "<record>", f"expected an object, got {_json_type(x)}")
           for i, x in enumerate(items) if not isinstance(x, dict)]
    if bad:
        raise ApiError(422, f"{len(bad)} item(s) of '{key}' are not objects", bad[:100])
    return items


def surrogate_errors(items: list[Mapping[str, Any]]) -> list[RecordError]:
    """Rows holding strings that cannot be encoded as UTF-8 (lone surrogates from ``\\ud800``)."""
    out: list[RecordError] = []
    for i, item in enumerate(items):
        for k, v in item.items():
            if not _encodable(str(k)):
                out.append(RecordError(i, _safe(str(k)), "field name is not valid Unicode (lone surrogate)"))
            elif isinstance(v, str) and not _encodable(v):
                out.append(RecordError(i, str(k), "string is not valid Unicode (lone surrogate)"))
    return out


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_fields(row: int, item: Mapping[str, Any], fields: Mapping[str, str]) -> list[RecordError]:
    """Type-check one item against ``fields`` (``?`` = optional)."""
    out = [RecordError(row, str(k), "unknown field") for k in item if k not in fields]
    for name, kind in fields.items():
        value = item.get(name)
        optional = kind.endswith("?") or kind == "time" or kind == "int"
        base = kind.rstrip("?")
        if value is None:
            if not optional:
                out.append(RecordError(row, name, "required field is missing"))
            continue
        if base == "str" and (not isinstance(value, str) or len(value) > MAX_STRING):
            out.append(RecordError(row, name, f"expected a string of at most {MAX_STRING} characters"))
        elif base == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                or not 0 <= value < 2**63):
            out.append(RecordError(row, name, "expected a non-negative integer"))
        elif base == "time" and not (
            isinstance(value, str)
            or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))
        ):
            out.append(RecordError(row, name, "expected an ISO 8601 timestamp"))
    return out


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
