"""Drift I/O: what the pure drift engine (:mod:`monitor.drift`) reads and writes.

- :mod:`monitor.persist.references` — named reference sets in the store;
- :mod:`monitor.persist.runs` — check a stored window and record the run (``drift_runs``),
  and read stored runs back as :class:`~monitor.drift.suite.DriftReport` objects;
- :mod:`monitor.persist.files` — drift between record files (``shiftwatch drift -r R -c C``).

``monitor.drift`` itself does no I/O; these modules sit between it and the store.
"""
