"""The light install: a serving process that only needs the collectors gets numpy, pyarrow and
httpx, and nothing of the sidecar (duckdb, evidently, fastapi, apscheduler, torch).

The slow test builds the project's wheel, installs it without extras into a fresh virtualenv
(dependencies from the package index), and logs records from there to a real sidecar.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.store import Store
from tests.packaging.helpers import wheel_and_venv
from tests.server.helpers import TOKEN, subprocess_sidecar

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("duckdb", "evidently", "fastapi", "apscheduler", "torch", "transformers", "scipy", "pandas",
         "pydantic", "uvicorn", "prometheus_client")


def _heavy_after(code: str, python: str = sys.executable) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd="/")
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_collectors_pulls_in_nothing_of_the_sidecar() -> None:
    assert _heavy_after("import collectors\nfrom collectors import Collector, HttpSink, ParquetSink") == []


def test_the_base_install_needs_only_numpy_pyarrow_httpx() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"])
    assert names == ["httpx", "numpy", "pyarrow"]
    assert "all" in project["optional-dependencies"]


@pytest.mark.slow
def test_fresh_light_venv_logs_to_a_running_sidecar(tmp_path: Path) -> None:
    py, wheel = wheel_and_venv(tmp_path)
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    assert _heavy_after("import collectors", python=py) == []

    db = tmp_path / "sidecar.duckdb"
    with subprocess_sidecar(db, tmp_path) as (_, base):
        script = textwrap.dedent(f"""
            from collectors import Collector, HttpSink
            sink = HttpSink({base!r}, token={TOKEN!r}, spool_dir={str(tmp_path / "spool")!r})
            with Collector(sink, model_name="light") as col:
                for i in range(25):
                    col.log({{"model_name": "light", "model_version": "1", "predicted_label": "pos",
                             "confidence": 0.9, "probs": [0.1, 0.9], "n_chars": 10 + i}})
            print(col.stats())
        """)
        done = subprocess.run([py, "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
        assert done.returncode == 0, done.stderr
    with Store(db) as store:
        assert store.count_predictions() == 25


def test_public_api_names_resolve_lazily() -> None:
    import monitor

    assert _heavy_after("import monitor") == []
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None, name
    with pytest.raises(AttributeError):
        _ = monitor.no_such_name  # type: ignore[attr-defined]


def test_public_api_lists_exactly_the_lazy_names() -> None:
    import monitor

    assert sorted(monitor.__all__) == sorted(["__version__", *monitor._EXPORTS])
