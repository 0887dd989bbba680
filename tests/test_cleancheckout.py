"""The clean-checkout check (``tests/cleancheckout.py``) fails a session that leaves a file behind."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests import cleancheckout

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

LEAKS = '''
from pathlib import Path

def test_writes_into_the_working_directory() -> None:
    Path("shiftwatch-models").mkdir()
    (Path("shiftwatch-models") / "ACTIVE").write_text("v1")
'''
CLEAN = '''
def test_writes_under_tmp_path(tmp_path) -> None:
    (tmp_path / "x.duckdb").write_text("x")
'''


def _session(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    """One pytest session with the plugin, in a fresh git checkout."""
    subprocess.run(["git", "init", "-q", str(pytester.path)], check=True)
    (pytester.path / ".gitignore").write_text("/shiftwatch-models/\n")  # ignored junk counts too
    pytester.makepyfile(test_one=body)
    return pytester.runpytest("-p", "no:cacheprovider", plugins=[cleancheckout])


def test_a_session_that_leaves_files_fails_and_names_them(pytester: pytest.Pytester) -> None:
    res = _session(pytester, LEAKS)
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    res.assert_outcomes(passed=1)  # the test itself passed: the session check failed it
    res.stdout.fnmatch_lines(["*left files in the checkout*", "*!! shiftwatch-models/"])


def test_a_session_that_writes_under_tmp_path_passes(pytester: pytest.Pytester) -> None:
    res = _session(pytester, CLEAN)
    assert res.ret == pytest.ExitCode.OK
    res.assert_outcomes(passed=1)
    res.stdout.no_fnmatch_line("*left files*")
