"""``shiftwatch demo``: the end-to-end story on real data (traffic, receiver, orchestration, summary).

Import :func:`monitor.demo.story.run_demo` for the whole story; the other
modules are small parts: :mod:`~monitor.demo.traffic` (windows from the shared
data sets), :mod:`~monitor.demo.receiver` (a local webhook receiver) and
:mod:`~monitor.demo.summary` (the closing table, read from DuckDB).
"""
