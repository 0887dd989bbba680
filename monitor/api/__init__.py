"""The sidecar's HTTP API (DESIGN §6): thin routers, one per resource.

``predictions`` (ingest), ``labels`` (delayed ground truth), ``telemetry`` (collector serving
errors and heartbeats), ``drift`` (latest results), ``metrics`` (Prometheus), ``reports``
(static HTML), ``health`` (``/healthz``). Shared plumbing: ``state`` (what the lifespan opens),
``body`` (bounded JSON bodies and batches), ``auth`` (bearer token middleware), ``errors``
(the 4xx error shape).
"""
