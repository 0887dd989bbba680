"""The API's error shape: ``{"detail": message, "errors": [{"row", "field", "message"}, ...]}``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import JSONResponse

from monitor.errors import RecordError

__all__ = ["ApiError", "api_error_handler"]


class ApiError(Exception):
    """A 4xx/5xx answer with a one-line ``detail`` and optional per-row field errors."""

    def __init__(self, status: int, detail: str, errors: Sequence[RecordError] = (),
                 *, event_ids: Sequence[object] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = tuple(errors)
        #: the batch's event_id per row: each error then names its record's event_id too
        self.event_ids = tuple(event_ids)

    def body(self) -> dict[str, object]:
        """The JSON body of the answer."""
        out: dict[str, object] = {"detail": _safe(self.detail)}
        if self.errors:
            items: list[dict[str, object]] = []
            for e in self.errors:
                item: dict[str, object] = {"row": e.row, "field": _safe(e.field),
                                           "message": _safe(e.message)}
                eid = self.event_ids[e.row] if 0 <= e.row < len(self.event_ids) else None
                if isinstance(eid, str):
                    item["event_id"] = _safe(eid[:200])
                items.append(item)
            out["errors"] = items
        return out


def _safe(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates from client input) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render an :class:`ApiError` as JSON."""
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
