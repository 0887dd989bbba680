"""Shared set-up of the packaging tests: this project's wheel and a fresh, empty venv for it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wheel_and_venv(tmp_path: Path) -> tuple[str, Path]:
    """Build the project's wheel (no deps) under ``tmp_path/wheels`` and create an empty venv at
    ``tmp_path/light``; the python of that venv and the wheel (not installed yet)."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    env_dir = tmp_path / "light"
    venv.create(env_dir, with_pip=True)
    return str(env_dir / "bin" / "python"), next(wheels.glob("shiftwatch-*.whl"))
