"""The Evidently 0.7 part of a per-window report (the only module that imports evidently).

A ``Report([DataDriftPreset()])`` over the scalar columns (never the
embedding-drift metric: its t-SNE is slow, and we test embeddings ourselves).
The snapshot's standalone HTML (``Snapshot.get_html_str(as_iframe=False)``,
what ``save_html`` writes) already inlines Evidently's JS bundle and icon
font from the installed package, so it needs no network; we put it into an
``<iframe srcdoc>`` so its styles cannot touch ours.

That bundle is ~3.6 MB per page; :func:`share_assets` moves it (and the icon-font
stylesheet) into one content-addressed file each under the reports directory
(``assets/evidently-<sha256>.js|css``) and links them by a relative path, so every run
page shares one copy and still works offline (an ``srcdoc`` frame resolves relative URLs
against its parent page).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from html import escape
from pathlib import Path

import numpy as np

__all__ = ["evidently_frame", "evidently_html", "share_assets"]

#: inline blocks at least this long are moved to shared asset files (the bundle is ~3.5 MB and
#: the icon-font stylesheet ~130 kB; the per-window data script, ~100 kB, stays in the page)
_SHARE_MIN_CHARS = {"script": 1_000_000, "style": 50_000}

_CATEGORICAL = ("predicted_label", "truncated")

_RESIZE = (
    "<script>(function(){var f=document.getElementById('evidently-frame');if(!f)return;"
    "function fit(){try{var b=f.contentWindow.document.body;if(b){var h=b.scrollHeight;"
    "if(h>0)f.style.height=(h+24)+'px';}}catch(e){}}"
    "f.addEventListener('load',function(){fit();try{new ResizeObserver(fit)"
    ".observe(f.contentWindow.document.body);}catch(e){}setTimeout(fit,500);setTimeout(fit,2000);});"
    "})();</script>"
)


def _frame(columns: Mapping[str, np.ndarray], names: list[str]) -> object:
    import pandas as pd

    data = {}
    for name in names:
        col = columns[name]
        if name == "truncated":
            data[name] = np.where(col > 0.5, "yes", "no")
        elif name == "predicted_label":
            data[name] = col.astype(str)
        else:
            data[name] = col.astype(np.float64)
    return pd.DataFrame(data)


def evidently_html(reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray]) -> str:
    """The standalone HTML of an Evidently data-drift report over the shared scalar columns."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [n for n in ("confidence", "entropy", "predicted_label", "n_tokens", "unk_rate", "truncated")
             if n in reference and n in current]
    definition = DataDefinition(
        numerical_columns=[n for n in names if n not in _CATEGORICAL],
        categorical_columns=[n for n in names if n in _CATEGORICAL],
    )
    ref = Dataset.from_pandas(_frame(reference, names), data_definition=definition)
    cur = Dataset.from_pandas(_frame(current, names), data_definition=definition)
    # constant columns (e.g. no [UNK] at all in the reference) make Evidently's correlation
    # matrix divide by zero; that is expected and must not surface as a warning
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        return str(snapshot.get_html_str(as_iframe=False))


def share_assets(document: str, assets_dir: Path, href_prefix: str) -> str:
    """``document`` with its large inline ``<script>``/``<style>`` blocks written once to
    ``assets_dir`` (named by content hash) and linked as ``href_prefix + name``."""
    import hashlib

    out: list[str] = []
    pos = 0
    pattern = re.compile(r"<(script|style)>")
    while (m := pattern.search(document, pos)) is not None:
        tag = m.group(1)
        end = document.find(f"</{tag}>", m.end())
        if end < 0:
            break
        body = document[m.end():end]
        out.append(document[pos:m.start()])
        if len(body) >= _SHARE_MIN_CHARS[tag]:
            ext = "js" if tag == "script" else "css"
            name = f"evidently-{hashlib.sha256(body.encode('utf-8')).hexdigest()[:16]}.{ext}"
            target = assets_dir / name
            if not target.exists():
                assets_dir.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(name + ".tmp")
                tmp.write_text(body, encoding="utf-8")
                os.replace(tmp, target)
            out.append(f'<script src="{href_prefix}{name}"></script>' if tag == "script"
                       else f'<link rel="stylesheet" href="{href_prefix}{name}">')
        else:
            out.append(document[m.start():end + len(tag) + 3])
        pos = end + len(tag) + 3
    out.append(document[pos:])
    return "".join(out)


def evidently_frame(document: str) -> str:
    """``document`` (a full HTML page) embedded as an auto-sized ``<iframe srcdoc>``."""
    return (f'<iframe id="evidently-frame" class="evidently" title="Evidently data drift report" '
            f'srcdoc="{escape(document, quote=True)}"></iframe>{_RESIZE}')
