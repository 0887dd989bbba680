"""Settings: state directories nobody sets live beside the DuckDB file, not in the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.settings import Settings, load_settings

DIRS = {"reports_dir": "shiftwatch-reports", "export_dir": "shiftwatch-export",
        "registry_dir": "shiftwatch-models", "spool_dir": "shiftwatch-spool"}


def test_unset_state_dirs_default_to_the_db_directory(tmp_path: Path) -> None:
    s = Settings(db_path=tmp_path / "state" / "sw.duckdb")
    assert {k: getattr(s, k) for k in DIRS} == {k: tmp_path / "state" / v for k, v in DIRS.items()}
    assert s.model_fields_set == {"db_path"}  # still defaults, not values someone set
    plain = Settings()  # the default DB in the working directory: the directories beside it, as before
    assert {k: getattr(plain, k) for k in DIRS} == {k: Path(v) for k, v in DIRS.items()}


def test_a_set_directory_is_taken_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTWATCH_EXPORT_DIR", str(tmp_path / "from-env"))
    config = tmp_path / "sidecar.yaml"
    config.write_text(f"db_path: {tmp_path / 'db' / 'sw.duckdb'}\nregistry_dir: {tmp_path / 'from-file'}\n")
    s = load_settings(config, reports_dir=Path("relative-reports"))
    assert s.registry_dir == tmp_path / "from-file"
    assert s.export_dir == tmp_path / "from-env"
    assert s.reports_dir == Path("relative-reports")  # relative to the working directory, as typed
    assert s.spool_dir == tmp_path / "db" / "shiftwatch-spool"


def test_the_environment_db_path_moves_the_defaults_and_a_dump_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTWATCH_DB_PATH", str(tmp_path / "env.duckdb"))
    s = load_settings(None)
    assert s.registry_dir == tmp_path / "shiftwatch-models"
    assert Settings(**s.model_dump()) == s
