"""What runs inside the serving process: record schema, tokenizer stats, embedding capture,
a bounded queue with background flush, and sinks.

    from collectors import Collector, DuckDBSink, HttpSink, InstrumentedClassifier

torch and transformers are imported only when a model is encoded.
"""

from __future__ import annotations

from collectors.collector import Collector, CollectorStats
from collectors.instrument import InstrumentedClassifier, Prediction
from collectors.pipeline import InstrumentedModel, InstrumentedPipeline, instrument_model, instrument_pipeline
from collectors.sinks import BatchRejected, DuckDBSink, HttpSink, ParquetSink, Sink, SinkUnavailable

__all__ = [
    "BatchRejected",
    "Collector",
    "CollectorStats",
    "DuckDBSink",
    "HttpSink",
    "InstrumentedClassifier",
    "InstrumentedModel",
    "InstrumentedPipeline",
    "ParquetSink",
    "Prediction",
    "Sink",
    "SinkUnavailable",
    "instrument_model",
    "instrument_pipeline",
]
