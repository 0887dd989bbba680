"""pytest plugin: a test session must leave the git checkout as it found it.

At session start it records ``git status --porcelain --ignored`` of the rootdir; at the end it
compares again. Any new entry — an untracked file, an ignored one (``*.duckdb``,
``shiftwatch-models/`` …) or a modified tracked file — fails the session (exit code 1) and is
named in the summary. Interpreter and tool caches (``__pycache__``, ``.pytest_cache``,
``.hypothesis`` …) are allowed. Outside a git checkout (an sdist) the check is off.

Loaded by ``tests/conftest.py``; ``tests/test_cleancheckout.py`` shows it failing a session.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CACHES = frozenset({"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"})
_KEY = pytest.StashKey[frozenset[str]]()


def status(root: Path) -> frozenset[str] | None:
    """The checkout's status lines, caches left out; ``None`` when ``root`` is not in git."""
    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--ignored"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(line for line in out.splitlines() if not _is_cache(line[3:]))


def _is_cache(path: str) -> bool:
    parts = Path(path.strip('"').split(" -> ")[-1]).parts
    return any(p in CACHES for p in parts) or path.endswith(".pyc")


def pytest_sessionstart(session: pytest.Session) -> None:
    before = status(session.config.rootpath)
    if before is not None:
        session.stash[_KEY] = before


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_KEY, None)
    if before is None:
        return
    after = status(session.config.rootpath) or frozenset()
    new = sorted(after - before)
    if not new:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")  # end the progress line
        reporter.write_sep("=", "the test session left files in the checkout", red=True)
        for line in new:
            reporter.write_line(f"  {line}")
        reporter.write_line("  write under tmp_path (or a Settings with paths), never the working directory")
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
