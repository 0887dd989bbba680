"""The operations the CLI and the sidecar's HTTP routes share: one function per command.

Each takes the open :class:`~monitor.store.Store` and the :class:`~monitor.settings.Settings`
plus plain keyword arguments, calls the registry / drift / review / report services, and
returns a JSON-ready value (dicts, lists, strings, numbers). The CLI runs them on a store it
opens itself (no sidecar) or asks the sidecar to run them over HTTP
(:mod:`monitor.client`); the routes of :mod:`monitor.api` call them on the sidecar's store.
So a command gives the same answer either way, and no logic lives in either front end.

Paths (register a model directory, ingest or export files, review files, report output)
are paths on the machine running the operation: with a sidecar, its host's disk — the CLI
sends absolute paths, which is right for a sidecar beside the CLI.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import ConfigError, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.jobs import JobRun
    from monitor.registry import Registry
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = [
    "check",
    "drift_window",
    "export_records",
    "ingest_file",
    "models_list",
    "models_register",
    "models_shadow",
    "models_show",
    "promote",
    "reference_create",
    "reference_list",
    "render_reports",
    "retrain_cancel",
    "retrain_list",
    "retrain_now",
    "retrain_status",
    "retry_refused_retrains",
    "review_export",
    "review_import",
    "rollback",
]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


#: the longest path, and path component, a request may name (Linux PATH_MAX / NAME_MAX)
_MAX_PATH_BYTES, _MAX_NAME_BYTES = 4096, 255


def _path(value: str, field: str) -> Path:
    """``value`` as a path a request may name; :class:`ConfigError` (a 400, not a server error)
    when no file system could hold it."""
    raw = value.encode("utf-8", "surrogatepass")
    if not value or len(raw) > _MAX_PATH_BYTES or any(
            len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in Path(value).parts):
        raise ConfigError(f"{field}: not a usable path ({len(raw)} bytes; at most {_MAX_PATH_BYTES}, "
                          f"{_MAX_NAME_BYTES} per component)")
    return Path(value)


def _registry(store: Store, settings: Settings) -> Registry:
    from monitor.registry import Registry

    return Registry(store, settings.registry_dir, settings=settings)


# -- models ------------------------------------------------------------------------------
def models_list(store: Store, settings: Settings, *, model: str | None = None) -> list[dict[str, Any]]:
    """Model versions (of ``model``), oldest first."""
    return [_jsonable(v.to_dict()) for v in _registry(store, settings).versions(model)]


def models_show(store: Store, settings: Settings, *, model: str, version: str) -> dict[str, Any]:
    """One version (``active`` for the active one) with the registry events that name it."""
    registry = _registry(store, settings)
    mv = registry.active(model) if version == "active" else registry.get(model, version)
    if mv is None:
        raise RegistryError(f"model {model!r} has no active version")
    events = [e for e in registry.events(model) if mv.version in (e["from_version"], e["to_version"])]
    out: dict[str, Any] = _jsonable({**mv.to_dict(), "events": events})
    return out


def models_register(store: Store, settings: Settings, *, directory: str, name: str,
                    version: str | None = None, train_file: str | None = None,
                    labels: list[str] | None = None, max_length: int = 128,
                    truncation_side: str = "right", pooling: str = "mean",
                    activate: bool = False, embedding_dim: int | None = None) -> dict[str, Any]:
    """Import a fine-tuned model directory as a new version (``candidate``, or ``active``).

    ``embedding_dim`` fixes the dimension of the version's record embeddings (origin
    ``registry``); without it the first accepted record fixes it."""
    from monitor.registry import Preprocessing

    pre = Preprocessing(max_length=max_length, truncation_side=truncation_side,  # type: ignore[arg-type]
                        pooling=pooling,  # type: ignore[arg-type]
                        labels=tuple(labels or ()))
    mv = _registry(store, settings).register(
        name, _path(directory, "directory"), version=version, preprocessing=pre,
        train_file=_path(train_file, "train_file") if train_file else None,
        status="active" if activate else "candidate", reason="registered by CLI",
        embedding_dim=embedding_dim)
    out: dict[str, Any] = _jsonable(mv.to_dict())
    return out


def models_shadow(store: Store, settings: Settings, *, model: str | None = None, version: str | None = None,
                  min_rows: int | None = None) -> list[dict[str, Any]]:
    """Decide pending shadow candidates (one, or every pending one of ``model``)."""
    from monitor.retrain.service import ShadowCheck, ShadowNotReady, check_pending_shadow, shadow_evaluate

    if version is not None and model is None:
        raise ConfigError("shadow VERSION needs --model")
    if version is None:
        checks = check_pending_shadow(store, settings, model, min_rows=min_rows)
    else:
        assert model is not None
        try:
            checks = [ShadowCheck(model, version, outcome=shadow_evaluate(store, settings, model, version,
                                                                          min_rows=min_rows))]
        except ShadowNotReady as exc:
            checks = [ShadowCheck(model, version, waiting=str(exc))]
    return [_jsonable(c.to_dict()) for c in checks]


def _switch(store: Store, settings: Settings, model: str, webhook: str | None, kind: str, *,
            version: str | None, reason: str) -> dict[str, Any]:
    """One activation change, announced through the outbox to ``webhook`` (or the settings'
    ``webhook_url``). One delivery attempt is made at once; a failed one stays in the outbox and
    is retried by the sidecar's delivery job (``undelivered`` lists its keys)."""
    from monitor.outbox import backoff_for, deliver_due

    if webhook:
        settings = settings.model_copy(update={"webhook_url": webhook})
    registry = _registry(store, settings)
    before = registry.active(model)
    if kind == "promote":
        if version is None:
            raise ConfigError("promote needs a VERSION")
        mv = registry.promote(model, version, reason=reason)
    else:
        mv = registry.rollback(model, to=version, reason=reason)
    undelivered: list[str] = []
    if settings.webhook_url:
        report = deliver_due(store, backoff=backoff_for(settings))
        undelivered = [*report.retrying, *report.failed]
    return {"model_name": model, "from_version": before.version if before else None,
            "to_version": mv.version, "status": mv.status, "undelivered": undelivered}


def promote(store: Store, settings: Settings, *, model: str, version: str, reason: str = "promoted by CLI",
            webhook: str | None = None) -> dict[str, Any]:
    """Make ``version`` the active version (DB + ACTIVE pointer); optionally announce it to a webhook."""
    return _switch(store, settings, model, webhook, "promote", version=version, reason=reason)


def rollback(store: Store, settings: Settings, *, model: str, to: str | None = None,
             reason: str = "rolled back by CLI", webhook: str | None = None) -> dict[str, Any]:
    """Restore the previously active version (or ``to``); the current one becomes rejected."""
    return _switch(store, settings, model, webhook, "rollback", version=to, reason=reason)


def retrain_now(store: Store, settings: Settings, *, model: str, reason: str, dry_run: bool = False,
                config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a retrain in the foreground (no sidecar) or its dry run; the outcome as JSON."""
    from monitor.retrain.service import RetrainConfig, retrain

    cfg = RetrainConfig.from_dict(config) if config else None
    outcome = retrain(store, settings, model, reason=reason, dry_run=dry_run, config=cfg)
    out: dict[str, Any] = _jsonable(outcome.to_dict())
    return out


def retrain_status(store: Store, settings: Settings, *, run_id: str) -> dict[str, Any]:
    """One retrain run's record (no live progress without a sidecar)."""
    from monitor.retrain.background import merge_run

    rows = store.fetch_dicts("retrain_jobs_run", {"run_id": run_id})
    if not rows:
        from monitor.errors import RetrainError

        raise RetrainError(f"no retrain run {run_id!r}")
    return merge_run(None, rows[0])


def retrain_list(store: Store, settings: Settings, *, model: str | None = None) -> list[dict[str, Any]]:
    """Retrain run records (of ``model``), newest first."""
    from monitor.retrain.background import merge_run

    return [merge_run(None, r) for r in store.fetch_dicts("retrain_runs", {"model_name": model})]


def retrain_cancel(store: Store, settings: Settings, *, run_id: str) -> dict[str, Any]:
    """Without a sidecar there is no background retrain to cancel: a one-line error saying so."""
    from monitor.errors import RetrainError

    raise RetrainError(f"no sidecar is running, so retrain {run_id} is not a background job; a foreground "
                       "retrain stops with its CLI (Ctrl-C)")


# -- references and drift -----------------------------------------------------------------
def reference_create(store: Store, settings: Settings, *, name: str, from_file: str | None = None,
                     model: str | None = None, model_version: str | None = None, last: int | None = None,
                     start: datetime | None = None, end: datetime | None = None,
                     replace: bool = False) -> dict[str, Any]:
    """Create a reference set from a records file or from a window of stored predictions."""
    from monitor.persist.references import create_reference
    from monitor.recordfile import read_records

    if from_file is not None:
        if last is not None or start is not None or end is not None:
            raise ConfigError("--from reads a file; --last/--start/--end select a store window")
        table, _ = read_records(_path(from_file, "from_file"))
        origin = f"file:{from_file}"
    else:
        if not model:
            raise ConfigError("give --from FILE, or --model with --last N or --start/--end")
        if last is not None and (start is not None or end is not None):
            raise ConfigError("give --last or --start/--end, not both")
        table = store.read_window(model, model_version=model_version, start=start, end=end, last_n=last)
        origin = f"window:{model}:{last or ''}:{start or ''}:{end or ''}"
    if table.num_rows == 0:
        raise ConfigError("the selected window has no records")
    m_name = model or str(table["model_name"][0].as_py())
    m_version = model_version or str(table["model_version"][table.num_rows - 1].as_py())
    n = create_reference(store, name, table, model_name=m_name, model_version=m_version, origin=origin,
                         replace=replace)
    return {"name": name, "n_rows": n, "model_name": m_name, "model_version": m_version}


def reference_list(store: Store, settings: Settings, *, model: str | None = None) -> list[dict[str, Any]]:
    """Reference sets, newest first."""
    from monitor.persist.references import list_references

    return [_jsonable(r) for r in list_references(store, model)]


def drift_window(store: Store, settings: Settings, *, model: str, model_version: str | None = None,
                 reference_name: str | None = None, last: int | None = None, start: datetime | None = None,
                 end: datetime | None = None, signals: list[str] | None = None, alpha: float = 0.01,
                 options: dict[str, dict[str, Any]] | None = None, seed: int = 0) -> dict[str, Any]:
    """Test a stored window against a reference set (recorded as a drift run): DESIGN §5 JSON + run_id."""
    from monitor.persist.runs import check_window

    if last is not None and (start is not None or end is not None):
        raise ConfigError("give --last or --start/--end, not both")
    run_id, report = check_window(store, model_name=model, model_version=model_version,
                                  reference_name=reference_name, last_n=last, start=start, end=end,
                                  signals=signals, alpha=alpha, options=options, seed=seed)
    result: dict[str, Any] = _jsonable(report.to_dict())
    result["run_id"] = run_id
    return result


# -- reports, review, records, check ------------------------------------------------------
def render_reports(store: Store, settings: Settings, *, out: str, model: str | None = None,
                   run: str | None = None) -> dict[str, Any]:
    """Render missing run reports, timelines and the index into ``out`` (or re-render one run)."""
    from reports.render import render_all, render_index, render_run, render_timeline

    dest = _path(out, "out")
    if run is not None:
        from reports.history import load_run

        path = render_run(store, run, dest)
        render_timeline(store, str(load_run(store, run)["model_name"]), dest)
        return {"report": str(path), "index": str(render_index(store, dest))}
    return {"report": None, "index": str(render_all(store, dest, model_name=model))}


def review_export(store: Store, settings: Settings, *, out: str, model: str | None = None,
                  all_rows: bool = False) -> dict[str, Any]:
    """Write queued rows for labelling to ``out`` (.csv or .jsonl)."""
    from monitor.review import export_queue

    n = export_queue(store, _path(out, "out"), model_name=model, status=None if all_rows else "pending")
    return {"rows": n, "path": out}


def review_import(store: Store, settings: Settings, *, file: str, source: str = "review") -> dict[str, Any]:
    """Store the labels of a filled-in review export as delayed ground truth; labels outside the
    model version's label set are counted (``out_of_scope``) and kept as evidence."""
    from monitor.review import import_labels

    result = import_labels(store, _path(file, "file"), source=source)
    return {**result.to_dict(), "summary": result.describe()}


def ingest_file(store: Store, settings: Settings, *, file: str, skip_bad: bool = False) -> dict[str, Any]:
    """Import a Parquet / JSON Lines file of prediction records."""
    from monitor.recordfile import read_records

    path = _path(file, "file")
    table, rejected = read_records(path, skip_bad=skip_bad, embedding_dims=store.embedding_dims())
    result = store.insert_predictions(table, skip_bad=skip_bad, source=str(path), validated=True)
    return {"accepted": result.accepted, "duplicates": result.duplicates,
            "skipped": [str(e) for e in [*rejected, *result.rejected]]}


def export_records(store: Store, settings: Settings, *, out: str, model: str | None = None,
                   start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Export records to a Hive-partitioned Parquet dataset under ``out``."""
    n = store.export_parquet(_path(out, "out"), model_name=model, start=start, end=end)
    return {"exported": n, "out": out}


def check(store: Store, settings: Settings, *, dry_run: bool = False, reports: bool = True,
          retention: bool = False, policy_file: str | None = None, scheduler: Any = None) -> dict[str, Any]:
    """One drift → policy → actions → reports cycle; its summary (``ok`` false if a job failed).

    ``scheduler``: run the cycle on this :class:`~monitor.scheduler.Scheduler` (the sidecar's,
    so the cycle cannot overlap its scheduled one) unless a dry run or another policy file
    asks for a scheduler of their own.

    Then (not in a dry run) retrains refused for too few labelled rows are started again where
    the labels have arrived since (:func:`retry_refused_retrains`, job ``retrain_retry``;
    ``summary["retrain_retry"]``): the one-shot ``shiftwatch check`` does what the sidecar's
    retry loop does.
    """
    from monitor.scheduler import Scheduler

    if scheduler is None or dry_run or policy_file is not None:
        updates: dict[str, Any] = {"dry_run": True} if dry_run else {}
        if policy_file is not None:
            updates["policy_file"] = _path(policy_file, "policy_file")
        scheduler = Scheduler(settings.model_copy(update=updates), store)
    result = scheduler.run_cycle(reports=reports, retention=retention)
    summary: dict[str, Any] = _jsonable(result.to_dict())
    summary["ok"] = result.ok
    summary["dry_run"] = bool(scheduler.settings.dry_run)
    if not scheduler.settings.dry_run:
        retry = retry_refused_retrains(store, settings)
        if retry is not None:
            summary["jobs"].append({"job": retry.job, "status": retry.status,
                                    "duration_s": round(retry.duration_s, 3), "error": retry.error})
            summary["retrain_retry"] = _jsonable(retry.result) if retry.ok else []
            summary["ok"] = summary["ok"] and retry.ok
    return summary


def retry_refused_retrains(store: Store, settings: Settings) -> JobRun | None:
    """Start again the retrains refused for too few labelled rows whose model now has them
    (:meth:`~monitor.retrain.background.RetrainJobs.retry_refused`), as one ``retrain_retry`` job
    run; ``None`` when no refusal is open.

    In the sidecar (its background jobs attached to ``store``) the runs start in its background;
    in a one-shot process they run to the end here, so each item also says how it ``ended``.
    """
    from monitor.jobs import FunctionJob
    from monitor.retrain.background import RetrainJobs, jobs_for

    if not store.fetch_dicts("retrain_jobs_open_refusals"):
        return None
    attached = jobs_for(store)
    jobs = attached or RetrainJobs(store, settings)

    def run() -> list[dict[str, Any]]:
        items = jobs.retry_refused()
        if attached is None:  # nobody else will wait for these threads: the command does
            for item in items:
                if item["started_run_id"]:
                    jobs.wait(item["started_run_id"])
                    item["ended"] = jobs.get(item["started_run_id"])["state"]
        return items

    return FunctionJob(store, "retrain_retry", run)()
