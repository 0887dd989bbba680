"""Closed-loop retraining: data assembly, the gradual-unfreezing trainer, guarded promotion.

Modules: :mod:`~monitor.retrain.data` (training data), :mod:`~monitor.retrain.trainer`
(fine-tuning), :mod:`~monitor.retrain.selection` (noise-aware checkpoint choice and early
stopping), :mod:`~monitor.retrain.metrics` (macro-F1, paired permutation test),
:mod:`~monitor.retrain.worker` (separate process, timeout, per-model lock),
:mod:`~monitor.retrain.guard` (the promotion decision: paired tests, promote / reject /
undecided), :mod:`~monitor.retrain.evaluate` (scoring, the former fixed-δ guard, reference sets) and
:mod:`~monitor.retrain.service` (``retrain(...)``). Nothing is imported here, so
``import monitor.retrain`` stays cheap.
"""
