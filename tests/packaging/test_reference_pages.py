"""The generated CLI reference (``docs/gen_reference.py``) walks every command, not only the root."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_cli_page_has_every_command_with_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYPER_USE_RICH", "0")  # the module sets it; monkeypatch restores it
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    page = gen.cli_page()
    sections = dict(part.split("\n", 1) for part in page.split("\n## ")[1:])
    for command in ("shiftwatch models register", "shiftwatch reference create", "shiftwatch retrain status",
                    "shiftwatch fleet drift", "shiftwatch promote"):
        assert f"`{command}`" in sections, command
    register = sections["`shiftwatch models register`"]
    assert "--model" in register and "--name" not in register  # the deprecated spelling is hidden
    assert "--name" in sections["`shiftwatch reference create`"]  # names the reference set
