"""A small typed HTTP client of the sidecar's API (what the CLI uses while a sidecar holds the DB).

Every method has the name and keyword arguments of the :mod:`monitor.operations` function the
route behind it calls, and returns the same JSON value. A 4xx/5xx answer raises
:class:`~monitor.errors.SidecarError` carrying the route's one-line ``detail`` (the text the
CLI would print in local mode) and the status; a sidecar that cannot be reached raises it too.

Paths are sent absolute: the sidecar resolves them on its own host, which is the CLI's host
for a sidecar beside it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from monitor.errors import SidecarError

__all__ = ["SidecarClient"]


def _path(value: str | Path | None) -> str | None:
    return None if value is None else str(Path(value).expanduser().resolve())


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class SidecarClient:
    """Calls the sidecar at ``url`` (bearer ``token`` when set)."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 600.0,
                 http: Any = None) -> None:
        """``http``: an existing ``httpx.Client``-like object to send through (e.g. Starlette's
        ``TestClient``); the token header is added to it."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http is None:
            http = httpx.Client(base_url=self.url, timeout=timeout_s)
        http.headers.update(headers)
        self._http: httpx.Client = http

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------
    def request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None) -> Any:
        """One call; the decoded JSON answer, or :class:`SidecarError` with the server's detail."""
        try:
            resp = self._http.request(method, path, json=body, params=_drop_none(params or {}))
        except httpx.HTTPError as exc:
            raise SidecarError(f"cannot reach the sidecar at {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            raise SidecarError(_detail(resp), status=resp.status_code)
        try:
            return resp.json()
        except ValueError as exc:
            raise SidecarError(
                f"{method} {path}: the sidecar answered {resp.status_code} without JSON") from exc

    def healthy(self, *, timeout_s: float = 2.0) -> bool:
        """Whether ``/healthz`` answers 200 within ``timeout_s``."""
        try:
            return self._http.get("/healthz", timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    # -- models ---------------------------------------------------------------------------
    def models_list(self, *, model: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/models``."""
        out: list[dict[str, Any]] = self.request("GET", "/v1/models",
                                                 params={"model_name": model})["versions"]
        return out

    def models_show(self, *, model: str, version: str) -> dict[str, Any]:
        """``GET /v1/models/{model}/versions/{version}`` (``active`` allowed)."""
        out: dict[str, Any] = self.request("GET", f"/v1/models/{model}/versions/{version}")
        return out

    def models_register(self, *, directory: str, name: str, version: str | None = None,
                        train_file: str | None = None, labels: list[str] | None = None, max_length: int = 128,
                        truncation_side: str = "right", pooling: str = "mean",
                        activate: bool = False, embedding_dim: int | None = None) -> dict[str, Any]:
        """``POST /v1/models``: register a model directory on the sidecar's host."""
        out: dict[str, Any] = self.request("POST", "/v1/models", body=_drop_none({
            "directory": _path(directory), "name": name, "version": version, "train_file": _path(train_file),
            "labels": labels, "max_length": max_length, "truncation_side": truncation_side,
            "pooling": pooling, "activate": activate, "embedding_dim": embedding_dim}))
        return out

    def models_shadow(self, *, model: str | None = None, version: str | None = None,
                      min_rows: int | None = None) -> list[dict[str, Any]]:
        """``POST /v1/models/shadow``: decide pending shadow candidates."""
        out: list[dict[str, Any]] = self.request("POST", "/v1/models/shadow", body=_drop_none(
            {"model": model, "version": version, "min_rows": min_rows}))["checks"]
        return out

    def promote(self, *, model: str, version: str, reason: str = "promoted by CLI",
                webhook: str | None = None) -> dict[str, Any]:
        """``POST /v1/models/{model}/promote``."""
        out: dict[str, Any] = self.request("POST", f"/v1/models/{model}/promote", body=_drop_none(
            {"version": version, "reason": reason, "webhook": webhook}))
        return out

    def rollback(self, *, model: str, to: str | None = None, reason: str = "rolled back by CLI",
                 webhook: str | None = None) -> dict[str, Any]:
        """``POST /v1/models/{model}/rollback``."""
        out: dict[str, Any] = self.request("POST", f"/v1/models/{model}/rollback", body=_drop_none(
            {"to": to, "reason": reason, "webhook": webhook}))
        return out

    # -- retrains -------------------------------------------------------------------------
    def retrain_now(self, *, model: str, reason: str, dry_run: bool = False,
                    config: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /v1/retrains``: a dry run answers its outcome; a real run starts in the background
        and answers its progress (``run_id``, ``state``)."""
        out: dict[str, Any] = self.request("POST", "/v1/retrains", body=_drop_none(
            {"model": model, "reason": reason, "dry_run": dry_run, "config": config}))
        return out

    def retrain_status(self, *, run_id: str) -> dict[str, Any]:
        """``GET /v1/retrains/{run_id}``: progress merged with the run record."""
        out: dict[str, Any] = self.request("GET", f"/v1/retrains/{run_id}")
        return out

    def retrain_list(self, *, model: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/retrains``: runs, newest first."""
        out: list[dict[str, Any]] = self.request("GET", "/v1/retrains", params={"model_name": model})["runs"]
        return out

    def retrain_cancel(self, *, run_id: str) -> dict[str, Any]:
        """``DELETE /v1/retrains/{run_id}``: cancel between two steps."""
        out: dict[str, Any] = self.request("DELETE", f"/v1/retrains/{run_id}")
        return out

    # -- references and drift ---------------------------------------------------------------
    def reference_create(self, *, name: str, from_file: str | None = None, model: str | None = None,
                         model_version: str | None = None, last: int | None = None,
                         start: datetime | None = None, end: datetime | None = None,
                         replace: bool = False) -> dict[str, Any]:
        """``POST /v1/references``."""
        out: dict[str, Any] = self.request("POST", "/v1/references", body=_drop_none({
            "name": name, "from_file": _path(from_file), "model": model, "model_version": model_version,
            "last": last, "start": _time(start), "end": _time(end), "replace": replace}))
        return out

    def reference_list(self, *, model: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/references``."""
        out: list[dict[str, Any]] = self.request("GET", "/v1/references",
                                                 params={"model_name": model})["references"]
        return out

    def drift_window(self, *, model: str, model_version: str | None = None, reference_name: str | None = None,
                     last: int | None = None, start: datetime | None = None, end: datetime | None = None,
                     signals: list[str] | None = None, alpha: float = 0.01,
                     options: dict[str, dict[str, Any]] | None = None, seed: int = 0) -> dict[str, Any]:
        """``POST /v1/drift/checks``: test a stored window now (recorded as a drift run)."""
        out: dict[str, Any] = self.request("POST", "/v1/drift/checks", body=_drop_none({
            "model": model, "model_version": model_version, "reference_name": reference_name, "last": last,
            "start": _time(start), "end": _time(end), "signals": signals, "alpha": alpha,
            "options": options, "seed": seed}))
        return out

    # -- reports, review, records, check ----------------------------------------------------
    def render_reports(self, *, out: str, model: str | None = None, run: str | None = None) -> dict[str, Any]:
        """``POST /v1/reports/render``."""
        res: dict[str, Any] = self.request("POST", "/v1/reports/render", body=_drop_none(
            {"out": _path(out), "model": model, "run": run}))
        return res

    def review_export(self, *, out: str, model: str | None = None, all_rows: bool = False) -> dict[str, Any]:
        """``POST /v1/review/export``."""
        res: dict[str, Any] = self.request("POST", "/v1/review/export", body=_drop_none(
            {"out": _path(out), "model": model, "all_rows": all_rows}))
        return res

    def review_import(self, *, file: str, source: str = "review") -> dict[str, Any]:
        """``POST /v1/review/import``."""
        res: dict[str, Any] = self.request("POST", "/v1/review/import", body={"file": _path(file),
                                                                               "source": source})
        return res

    def ingest_file(self, *, file: str, skip_bad: bool = False) -> dict[str, Any]:
        """``POST /v1/ingest``: import a records file on the sidecar's host."""
        res: dict[str, Any] = self.request("POST", "/v1/ingest",
                                           body={"file": _path(file), "skip_bad": skip_bad})
        return res

    def export_records(self, *, out: str, model: str | None = None, start: datetime | None = None,
                       end: datetime | None = None) -> dict[str, Any]:
        """``POST /v1/exports``."""
        res: dict[str, Any] = self.request("POST", "/v1/exports", body=_drop_none(
            {"out": _path(out), "model": model, "start": _time(start), "end": _time(end)}))
        return res

    def check(self, *, dry_run: bool = False, reports: bool = True, retention: bool = False,
              policy_file: str | None = None) -> dict[str, Any]:
        """``POST /v1/checks``: one drift → policy → actions → reports cycle in the sidecar."""
        res: dict[str, Any] = self.request("POST", "/v1/checks", body=_drop_none(
            {"dry_run": dry_run, "reports": reports, "retention": retention,
             "policy_file": _path(policy_file)}))
        return res


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"the sidecar answered {resp.status_code}: {resp.text[:200]}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        return f"the sidecar answered {resp.status_code}: {body}"
    errors = body.get("errors") or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        where = first.get("field") or ""
        message = first.get("message")
        detail = f"{detail}: {where}: {message}" if where else f"{detail}: {message}"
    return detail
