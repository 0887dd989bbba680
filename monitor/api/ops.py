"""Running a :mod:`monitor.operations` function for a route: in a worker thread, errors translated.

:func:`run_op` calls ``fn(store, settings, **kwargs)`` on the app's store off the event loop and
turns shiftwatch errors into the API's one-line error answers: a retrain already running → 409,
an unknown run or missing named thing → 404, a string no path or name can hold → 422, the
store failing → 503, any other :class:`~monitor.errors.ShiftwatchError`
(bad option, unknown version, too few labels, …) → 400 with the same message the CLI prints
in local mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.concurrency import run_in_threadpool

from monitor.api.errors import ApiError
from monitor.api.state import AppState
from monitor.errors import NotFoundError, RetrainError, SchemaError, ShiftwatchError, StoreError

__all__ = ["Body", "run_op", "translate"]

_T = TypeVar("_T")


def _bad_char(text: str) -> str | None:
    """Why ``text`` cannot be a name, reason or path: a control character or a lone surrogate."""
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            return f"control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return "lone surrogate (not UTF-8)"
    return None


def _check_strings(value: Any, where: str) -> None:
    if isinstance(value, str):
        why = _bad_char(value)
        if why is not None:
            raise ValueError(f"{where or 'value'}: {why}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, where)
            _check_strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, f"{where}[{i}]")


class Body(BaseModel):
    """Base of the operation request bodies: unknown fields are a 422, and so is any string
    holding a control character or a lone surrogate (names, reasons and paths are passed on to
    DuckDB and the file system, which cannot take them)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _strings(cls, data: Any) -> Any:
        _check_strings(data, "")
        return data


def translate(exc: ShiftwatchError) -> ApiError:
    """The API error of a shiftwatch error raised by an operation."""
    from monitor.retrain.background import RetrainBusy

    message = str(exc)
    if isinstance(exc, RetrainBusy) or (isinstance(exc, RetrainError) and "already running" in message):
        return ApiError(409, message)
    if isinstance(exc, RetrainError) and message.startswith("no retrain"):
        return ApiError(404, message)
    if isinstance(exc, SchemaError):
        return ApiError(422, message, exc.errors[:100])
    if isinstance(exc, NotFoundError):
        return ApiError(404, message)
    if isinstance(exc, StoreError):
        return ApiError(503, message)
    return ApiError(400, message)


async def call(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)`` in a worker thread, shiftwatch errors translated."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ShiftwatchError as exc:
        raise translate(exc) from exc


async def run_op(state: AppState, fn: Callable[..., _T], **kwargs: Any) -> _T:
    """``fn(store, settings, **kwargs)`` on the app's open store, in a worker thread."""
    store = state.open_store()
    return await call(fn, store, state.settings, **kwargs)
