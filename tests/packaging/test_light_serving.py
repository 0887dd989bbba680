"""The serving example (examples/serving_app.py) runs on the light install against a sidecar.

A fresh virtualenv gets the project's wheel without extras (numpy, pyarrow, httpx from the
package index), the example's web framework (fastapi, uvicorn, from the index) and the ``[ml]``
extra's torch / transformers / safetensors with their dependencies. Those are not downloaded
again (a CPU torch wheel is ~750 MB unpacked): the very files of this environment are linked
into a directory that a ``.pth`` file puts on the light environment's path, distribution
metadata included, so the light venv has exactly those distributions and nothing else of this
one (no duckdb, evidently, apscheduler, pydantic-settings, scipy, pandas).

The example then serves a registered tiny BERT, logs through HttpSink to a ``shiftwatch
serve`` child process, and every prediction it answered is in the sidecar's DuckDB file after
a SIGTERM (the app's lifespan closes the collector, which flushes). The sizes of the install
are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from monitor.registry import Preprocessing, Registry
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.packaging.helpers import wheel_and_venv
from tests.server.helpers import TOKEN, free_port, subprocess_sidecar, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ML = ("torch", "transformers", "safetensors")  # the [ml] extra
ABSENT = ("duckdb", "evidently", "apscheduler", "pydantic_settings", "scipy", "pandas", "prometheus_client")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: tuple[str, ...], have: set[str]) -> list[metadata.Distribution]:
    """The distributions of this environment that ``roots`` need, less those in ``have``."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in seen or name in have:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _link_overlay(dists: list[metadata.Distribution], overlay: Path) -> None:
    overlay.mkdir()
    for dist in dists:
        site = Path(str(dist.locate_file("")))
        for top in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}:
            if (site / top).exists() and not (overlay / top).exists():
                (overlay / top).symlink_to(site / top)


def _size(path: Path, *, follow: bool) -> int:
    total = 0
    for dirpath, _, files in os.walk(path, followlinks=follow):
        for f in files:
            p = Path(dirpath) / f
            if follow or not p.is_symlink():
                total += p.stat().st_size
    return total


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


@pytest.mark.slow
def test_the_serving_example_runs_on_the_light_install_against_a_sidecar(tmp_path: Path) -> None:
    py, wheel = wheel_and_venv(tmp_path)
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    bare_venv = _size(site, follow=False)
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    base = _size(site, follow=False)
    web = [f"{n}=={metadata.version(n)}" for n in ("fastapi", "uvicorn")]  # the tested versions
    subprocess.run([py, "-m", "pip", "install", "-q", *web], check=True, capture_output=True)
    with_web = _size(site, follow=False)
    listed = json.loads(subprocess.run([py, "-m", "pip", "list", "--format=json"], check=True,
                                       capture_output=True, text=True).stdout)
    ml = _closure(ML, {_norm(d["name"]) for d in listed})
    _link_overlay(ml, tmp_path / "ml")
    (site / "shiftwatch-ml-overlay.pth").write_text(f"{tmp_path / 'ml'}\n", encoding="utf-8")
    ml_size = _size(tmp_path / "ml", follow=True)
    print(f"\nlight install (site-packages): shiftwatch + numpy, pyarrow, httpx {_mib(base - bare_venv)}; "
          f"+ fastapi, uvicorn {_mib(with_web - bare_venv)}; + [ml] ({len(ml)} distributions: "
          f"{', '.join(sorted(d.metadata['Name'] for d in ml))}) {_mib(with_web - bare_venv + ml_size)}")

    probe = ("import importlib.util, json, sys; sys.path.insert(0, sys.argv[1]); import serving_app; "
             f"print(json.dumps([m for m in {ABSENT!r} if importlib.util.find_spec(m) is not None "
             "or m in sys.modules]))")
    out = subprocess.run([py, "-c", probe, str(ROOT / "examples")], capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

    db = tmp_path / "sidecar.duckdb"
    models = tmp_path / "models"  # where subprocess_sidecar's environment puts the registry
    with Store(db) as store:
        Registry(store, models).register("sentiment", make_tiny_bert(tmp_path / "v1src"), version="v1",
                                         preprocessing=Preprocessing(max_length=32,
                                                                     labels=("negative", "positive")),
                                         status="active")
    texts = [["the battery is great", "awful food"], ["i love this phone"],
             ["bad service", "good", "not very"]]
    with subprocess_sidecar(db, tmp_path) as (_, sidecar):
        port = free_port()
        env = {**os.environ, "PYTHONPATH": "", "MODEL_NAME": "sentiment",
               "SHIFTWATCH_REGISTRY_DIR": str(models), "SHIFTWATCH_URL": sidecar,
               "SHIFTWATCH_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1",
               "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"), "TOKENIZERS_PARALLELISM": "false"}
        app = subprocess.Popen([py, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"), "serving_app:app",
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                               env=env, cwd="/", stderr=subprocess.PIPE)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base_url, timeout=120, proc=app)  # type: ignore[arg-type]
            for batch in texts:
                r = httpx.post(f"{base_url}/predict", json={"texts": batch}, timeout=60)
                assert r.status_code == 200, r.text
                assert [p["model_version"] for p in r.json()] == ["v1"] * len(batch)
        finally:
            app.send_signal(signal.SIGTERM)  # lifespan shutdown: the collector flushes to the sidecar
            try:
                _, err = app.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                app.kill()
                _, err = app.communicate()
        # uvicorn re-raises the SIGTERM after its graceful shutdown: -15 is a clean exit
        assert app.returncode in (0, -signal.SIGTERM), err.decode(errors="replace")[-2000:]
        assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    with Store(db) as store:
        window = store.read_window("sentiment")
        assert window.num_rows == sum(len(b) for b in texts)
        assert window.column("embedding").null_count == 0
        assert set(window.column("predicted_label").to_pylist()) <= {"negative", "positive"}
