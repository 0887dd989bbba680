"""Bounded request bodies: size (413), UTF-8 and JSON (400), batch shape and size (422/413).

JSON is parsed by the record codec (:func:`collectors.codec.parse_json`), the same parser as
JSON Lines files.

The body is read on the event loop with a running byte count (a lying or absent
``Content-Length`` cannot get past the bound); decoding and parsing happen in the caller's
worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from collectors import codec
from monitor.api.errors import ApiError
from monitor.errors import RecordError, SchemaError

__all__ = ["parse_json", "read_body", "take_batch"]


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
    """The body parsed by the record codec's one JSON parser; 400 naming the problem."""
    if not body.strip():
        raise ApiError(400, "empty request body; expected a JSON object")
    try:
        return codec.parse_json(body)
    except SchemaError as exc:
        raise ApiError(400, exc.errors[0].message if exc.errors else "invalid JSON") from exc


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


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
