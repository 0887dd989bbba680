"""The generated CLI reference (``docs/gen_reference.py``) walks every command, not only the root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter, as `make docs` runs it: the module sets TYPER_USE_RICH=0 before typer is
# imported (in this process typer is imported already, with rich help that prints instead of
# returning its text). run_path without __main__ builds the page without writing docs/reference/.
CODE = "import runpy, sys; sys.stdout.write(runpy.run_path(sys.argv[1], run_name='gen')['cli_page']())"


def test_cli_page_has_every_command_with_its_options() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    page = subprocess.run([sys.executable, "-c", CODE, str(ROOT / "docs" / "gen_reference.py")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    sections = dict(part.split("\n", 1) for part in page.split("\n## ")[1:])
    for command in ("shiftwatch models register", "shiftwatch reference create", "shiftwatch retrain status",
                    "shiftwatch fleet drift", "shiftwatch promote"):
        assert f"`{command}`" in sections, command
    register = sections["`shiftwatch models register`"]
    assert "--model" in register and "--name" not in register  # the deprecated spelling is hidden
    assert "--name" in sections["`shiftwatch reference create`"]  # names the reference set
