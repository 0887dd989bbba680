"""Prometheus metrics of one sidecar app.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (never the process-global
one, so several apps — e.g. in tests — never share or clash). Two kinds of values:

- **process counters** the HTTP handlers bump: records ingested / duplicated / rejected,
  requests by endpoint and status, ingest latency, enrichment progress;
- **DB-backed values** derived at scrape time from the tables other components write, so the
  sidecar needs no coupling to the scheduler: each signal's latest statistic and p-value
  (``drift_runs`` / ``drift_results``), alerts fired, actions, job durations and last-success
  timestamps (``job_runs``), notifications by kind and status (``outbox``), collector-reported
  queue depth and drops (``collector_heartbeats``), serving errors, and the newest
  operational-health window.

A table that cannot be read (e.g. a migration not applied) is skipped and counted in
``shiftwatch_metrics_scrape_errors_total``; the scrape itself never fails.

Label values are bounded (:class:`LabelCap`): at most ``max_label_values`` distinct model /
version / collector values per scrape (the most recently seen ones first, in the order the
queries return them), each cut to ``max_label_chars`` characters; the rest are folded into the
value ``other`` and counted in ``shiftwatch_metrics_labels_folded_total``. One client sending
a million model names cannot grow the exposition without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.errors import StoreError
from monitor.store import Store

__all__ = ["CONTENT_TYPE", "LabelCap", "ServerMetrics"]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


#: default bound on distinct values per label kind in one scrape
MAX_LABEL_VALUES = 100
#: default bound on the length of one label value
MAX_LABEL_CHARS = 120
OTHER = "other"


class LabelCap:
    """Bounds the label values of one scrape: ``value(kind, v)`` returns ``v`` (cut to
    ``max_chars``) for the first ``max_values`` distinct values of ``kind``, else ``other``;
    :attr:`folded` counts the folded values (cumulative over scrapes)."""

    def __init__(self, *, max_values: int = MAX_LABEL_VALUES, max_chars: int = MAX_LABEL_CHARS) -> None:
        self.max_values = max_values
        self.max_chars = max_chars
        self.folded = 0
        self._seen: dict[str, set[str]] = {}

    def start_scrape(self) -> None:
        """Forget the values of the previous scrape."""
        self._seen = {}

    def value(self, kind: str, raw: Any) -> str:
        """The bounded label value of ``raw`` for label kind ``kind``."""
        text = "" if raw is None else str(raw)
        if len(text) > self.max_chars:
            text = text[: self.max_chars - 1] + "~"
        seen = self._seen.setdefault(kind, set())
        if text in seen:
            return text
        if len(seen) >= self.max_values:
            self.folded += 1
            return OTHER
        seen.add(text)
        return text


#: gauges that are counts: folded series add up (other gauges keep the first folded value)
_ADDITIVE_GAUGES = frozenset({"shiftwatch_predictions_stored", "shiftwatch_collector_queue_depth",
                              "shiftwatch_collector_queue_capacity"})


def _merge(metric: Metric) -> Metric:
    """Merge samples that folding made identical: counters (and count gauges) add up, other
    gauges keep the first."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    additive = metric.type == "counter" or metric.name in _ADDITIVE_GAUGES
    for sample in metric.samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if key in merged:
            if additive:
                merged[key] = merged[key]._replace(value=merged[key].value + sample.value)
            continue
        merged[key] = sample
    if len(merged) != len(metric.samples):
        metric.samples = list(merged.values())
    return metric


class _StoreCollector(Collector):
    """Reads the DB tables at scrape time and yields metric families."""

    def __init__(self, store: Callable[[], Store | None], cap: LabelCap) -> None:
        self._store = store
        self.failures = 0
        self.cap = cap

    def _m(self, value: Any) -> str:
        return self.cap.value("model", value)

    def _v(self, value: Any) -> str:
        return self.cap.value("version", value)

    def _rows(self, store: Store, name: str) -> list[dict[str, Any]]:
        try:
            return store.fetch_dicts(name)
        except StoreError as exc:
            self.failures += 1
            log.debug("metrics query %s failed: %s", name, exc)
            return []

    def collect(self) -> Iterator[Metric]:
        store = self._store()
        if store is None:
            return
        self.cap.start_scrape()
        for gen in (self._drift, self._ops, self._collectors, self._health, self._serving,
                    self._outbox):
            for metric in gen(store):
                yield _merge(metric)
        failures = CounterMetricFamily("shiftwatch_metrics_scrape_errors",
                                       "DB-backed metric queries that failed at scrape time")
        failures.add_metric([], float(self.failures))
        yield failures
        folded = CounterMetricFamily("shiftwatch_metrics_labels_folded",
                                     "Label values folded into 'other' (or cut) to bound cardinality")
        folded.add_metric([], float(self.cap.folded))
        yield folded

    def _drift(self, store: Store) -> Iterator[Metric]:
        stat = GaugeMetricFamily("shiftwatch_drift_statistic",
                                 "Latest drift statistic per model and signal",
                                 labels=["model", "version", "signal", "method"])
        pval = GaugeMetricFamily("shiftwatch_drift_p_value", "Latest drift p-value per model and signal",
                                 labels=["model", "version", "signal"])
        drifted = GaugeMetricFamily("shiftwatch_drift_signal_drifted",
                                    "1 when the signal drifted in the latest run of the model",
                                    labels=["model", "version", "signal", "status"])
        last_run = GaugeMetricFamily("shiftwatch_drift_last_run_timestamp_seconds",
                                     "Time of the latest drift run per model", labels=["model"])
        seen: set[str] = set()
        for r in self._rows(store, "server_latest_signals"):
            model, version, signal = self._m(r["model_name"]), self._v(r["model_version"]), r["signal"]
            if r["statistic"] is not None:
                stat.add_metric([model, version, signal, r["method"]], float(r["statistic"]))
            if r["p_value"] is not None:
                pval.add_metric([model, version, signal], float(r["p_value"]))
            drifted.add_metric([model, version, signal, r["status"]], 1.0 if r["drifted"] else 0.0)
            if model not in seen and r["run_at"] is not None:
                seen.add(model)
                last_run.add_metric([model], float(r["run_at"]))  # model already bounded
        runs = CounterMetricFamily("shiftwatch_drift_runs", "Drift runs per model and verdict",
                                   labels=["model", "drifted"])
        for r in self._rows(store, "server_drift_run_counts"):
            runs.add_metric([self._m(r["model_name"]), str(bool(r["drifted"])).lower()], float(r["n"]))
        yield from (stat, pval, drifted, last_run, runs)

    def _ops(self, store: Store) -> Iterator[Metric]:
        alerts = CounterMetricFamily("shiftwatch_alerts_fired", "Alerts fired per model, rule and severity",
                                     labels=["model", "rule", "severity"])
        for r in self._rows(store, "server_alert_counts"):
            alerts.add_metric([self._m(r["model_name"]), r["rule"], r["severity"]], float(r["n"]))
        actions = CounterMetricFamily("shiftwatch_actions", "Actions per kind and status",
                                      labels=["kind", "status"])
        for r in self._rows(store, "server_action_counts"):
            actions.add_metric([r["kind"], r["status"]], float(r["n"]))
        job_runs = CounterMetricFamily("shiftwatch_job_runs", "Scheduler job runs per job and status",
                                       labels=["job", "status"])
        duration = GaugeMetricFamily("shiftwatch_job_last_duration_seconds",
                                     "Duration of the latest run of each job", labels=["job"])
        success = GaugeMetricFamily("shiftwatch_job_last_success_timestamp_seconds",
                                    "When each job last finished successfully", labels=["job"])
        for r in self._rows(store, "server_job_stats"):
            job = self.cap.value("job", r["job"])
            job_runs.add_metric([job, "ok"], float(r["n_ok"]))
            job_runs.add_metric([job, "failed"], float(r["n_failed"]))
            if r["last_duration_s"] is not None:
                duration.add_metric([job], float(r["last_duration_s"]))
            if r["last_success_at"] is not None:
                success.add_metric([job], float(r["last_success_at"]))
        stored = GaugeMetricFamily("shiftwatch_predictions_stored", "Prediction records in the store",
                                   labels=["model", "version"])
        for r in self._rows(store, "server_prediction_counts"):
            stored.add_metric([self._m(r["model_name"]), self._v(r["model_version"])], float(r["n"]))
        yield from (alerts, actions, job_runs, duration, success, stored)

    def _outbox(self, store: Store) -> Iterator[Metric]:
        notes = GaugeMetricFamily("shiftwatch_notifications",
                                  "Notifications in the outbox by kind and status "
                                  "(pending, delivered, failed, expired)", labels=["kind", "status"])
        oldest = GaugeMetricFamily("shiftwatch_notifications_oldest_pending_timestamp_seconds",
                                   "When the oldest undelivered notification was queued")
        for r in self._rows(store, "outbox_counts"):
            notes.add_metric([r["kind"], r["status"]], float(r["n"]))
            if r["status"] == "pending" and r["oldest_at"] is not None:
                oldest.add_metric([], float(r["oldest_at"]))
        yield from (notes, oldest)

    def _collectors(self, store: Store) -> Iterator[Metric]:
        labels = ["collector", "model", "version"]
        dropped = CounterMetricFamily("shiftwatch_collector_dropped",
                                      "Records the collector reports it dropped (latest heartbeat)",
                                      labels=labels)
        depth = GaugeMetricFamily("shiftwatch_collector_queue_depth",
                                  "Collector queue depth (latest heartbeat)", labels=labels)
        capacity = GaugeMetricFamily("shiftwatch_collector_queue_capacity",
                                     "Collector queue capacity (latest heartbeat)", labels=labels)
        failures = CounterMetricFamily("shiftwatch_collector_sink_failures",
                                       "Sink failures the collector reports (latest heartbeat)",
                                       labels=labels)
        rejected = CounterMetricFamily("shiftwatch_collector_rejected",
                                       "Records the collector reports refused as invalid (latest "
                                       "heartbeat)", labels=labels)
        evicted = CounterMetricFamily("shiftwatch_collector_evicted",
                                      "Spooled records the collector deleted to bound its spool "
                                      "(latest heartbeat)", labels=labels)
        for r in self._rows(store, "server_collector_drops"):
            key = [self.cap.value("collector", r["collector_id"]), self._m(r["model_name"] or ""),
                   self._v(r["model_version"] or "")]
            for family, col in ((dropped, "dropped"), (depth, "queue_depth"),
                                (capacity, "queue_capacity"), (failures, "sink_failures"),
                                (rejected, "rejected"), (evicted, "evicted")):
                if r.get(col) is not None:
                    family.add_metric(key, float(r[col]))
        errors = CounterMetricFamily("shiftwatch_serving_errors",
                                     "Serving errors reported by collectors",
                                     labels=["model", "version", "kind"])
        for r in self._rows(store, "server_serving_error_counts"):
            errors.add_metric([self._m(r["model_name"]), self._v(r["model_version"] or ""),
                               self.cap.value("kind", r["kind"])], float(r["n"]))
        yield from (dropped, depth, capacity, failures, rejected, evicted, errors)

    def _health(self, store: Store) -> Iterator[Metric]:
        labels = ["model", "version"]
        latency = GaugeMetricFamily("shiftwatch_health_latency_ms",
                                    "Model latency quantiles of the newest health window",
                                    labels=[*labels, "quantile"])
        throughput = GaugeMetricFamily("shiftwatch_health_throughput_per_second",
                                       "Records per second in the newest health window", labels=labels)
        error_rate = GaugeMetricFamily("shiftwatch_health_error_rate",
                                       "Serving error rate in the newest health window", labels=labels)
        for r in self._rows(store, "server_latest_health"):
            key = [self._m(r["model_name"]), self._v(r["model_version"])]
            for q, col in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms"),
                           ("0.99", "latency_p99_ms")):
                if r[col] is not None:
                    latency.add_metric([*key, q], float(r[col]))
            if r["throughput_per_s"] is not None:
                throughput.add_metric(key, float(r["throughput_per_s"]))
            if r["error_rate"] is not None:
                error_rate.add_metric(key, float(r["error_rate"]))
        yield from (latency, throughput, error_rate)


    def _serving(self, store: Store) -> Iterator[Metric]:
        """Enrichment lag, retrain state and the active versions (dashboards, alert rules)."""
        labels = ["model", "version"]
        backlog = GaugeMetricFamily("shiftwatch_enrich_backlog_records",
                                    "Text-only records waiting for enrichment", labels=labels)
        lag = GaugeMetricFamily("shiftwatch_enrich_lag_seconds",
                                "Age of the oldest record waiting for enrichment", labels=labels)
        for r in self._rows(store, "server_enrich_backlog"):
            key = [self._m(r["model_name"]), self._v(r["model_version"])]
            backlog.add_metric(key, float(r["n"]))
            if r["oldest_s"] is not None:
                lag.add_metric(key, max(float(r["oldest_s"]), 0.0))
        retrains = GaugeMetricFamily("shiftwatch_retrain_runs", "Retrain runs per model and status",
                                     labels=["model", "status"])
        retrain_last = GaugeMetricFamily("shiftwatch_retrain_last_timestamp_seconds",
                                         "Latest start or finish of a retrain run per model and status",
                                         labels=["model", "status"])
        for r in self._rows(store, "server_retrain_states"):
            retrains.add_metric([self._m(r["model_name"]), r["status"]], float(r["n"]))
            if r["last_at"] is not None:
                retrain_last.add_metric([self._m(r["model_name"]), r["status"]], float(r["last_at"]))
        active = GaugeMetricFamily("shiftwatch_model_active_version_info",
                                   "1 for the active version of each registered model", labels=labels)
        for r in self._rows(store, "server_active_versions"):
            active.add_metric([self._m(r["model_name"]), self._v(r["version"])], 1.0)
        yield from (backlog, lag, retrains, retrain_last, active)


class ServerMetrics:
    """The metrics of one app: process counters plus the DB-backed collector.

    ``store`` is a callable returning the app's open store (``None`` before startup or
    after shutdown, in which case only the process counters are exported).
    """

    def __init__(self, store: Callable[[], Store | None], *, max_label_values: int = MAX_LABEL_VALUES,
                 max_label_chars: int = MAX_LABEL_CHARS) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter("shiftwatch_records_ingested", "Prediction records committed", registry=r)
        self.duplicated = Counter("shiftwatch_records_duplicated",
                                  "Prediction records already stored (re-sent event_id)", registry=r)
        self.rejected = Counter("shiftwatch_records_rejected",
                                "Prediction records in batches rejected with 4xx", registry=r)
        self.labels = Counter("shiftwatch_labels_ingested", "Delayed labels stored", registry=r)
        self.errors_reported = Counter("shiftwatch_serving_errors_reported",
                                       "Serving errors received from collectors", registry=r)
        self.heartbeats = Counter("shiftwatch_heartbeats_received", "Collector heartbeats received",
                                  registry=r)
        self.requests = Counter("shiftwatch_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.ingest_seconds = Histogram(
            "shiftwatch_ingest_seconds", "Time from request body to commit for POST /v1/predictions",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r)
        self.enriched = Counter("shiftwatch_records_enriched",
                                "Records given embeddings / tokenizer stats by the sidecar", registry=r)
        self.enrich_failures = Counter("shiftwatch_enrich_failures",
                                       "Enrichment batches that failed", ["reason"], registry=r)
        self.enrich_queue = Gauge("shiftwatch_enrich_queue_depth", "Pending enrichment tasks", registry=r)
        self.enrich_dropped = Counter("shiftwatch_enrich_tasks_dropped",
                                      "Enrichment tasks dropped on a full queue (the periodic sweep "
                                      "picks their records up)", registry=r)
        self.cloudevents = Counter("shiftwatch_cloudevents_received",
                                   "Inference-logger CloudEvents by half and outcome "
                                   "(pending, joined, duplicate, rejected)", ["kind", "outcome"],
                                   registry=r)
        self.cloudevents_pending = Gauge("shiftwatch_cloudevents_pending",
                                         "CloudEvent halves waiting for their other half", registry=r)
        # (collected before the counter: a scrape's sweep is counted in the same scrape)
        self.cloudevents_unmatched = Counter("shiftwatch_cloudevents_unmatched",
                                             "CloudEvent halves evicted without their other half "
                                             "(waited too long, or the buffer was full)", ["kind"],
                                             registry=r)
        self.label_cap = LabelCap(max_values=max_label_values, max_chars=max_label_chars)
        self._db = _StoreCollector(store, self.label_cap)
        r.register(self._db)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (DB-backed values read now)."""
        return bytes(generate_latest(self.registry))
