"""HTML drift reports: per-run Evidently + our own sections, per-model timelines, an index.

Public entry points live in :mod:`reports.render` (``render_run``, ``render_timeline``,
``render_index``, ``render_all``). Importing this package imports nothing heavy; evidently
is imported lazily by :mod:`reports.evidently_section` only.

Modules, one job each:

    tokens, projection, distributions, window, examples   pure data preparation
    content                                               RunContent = everything a report shows
    svg, page, run_page, timeline_page, index_page        HTML formatting (inline SVG, no JS)
    evidently_section                                     the Evidently 0.7 report (iframe srcdoc)
    history, render                                       store reads and file writes
"""
