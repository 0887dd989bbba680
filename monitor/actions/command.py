"""``command``: run a configured executable with the alert as JSON on stdin.

The command is an argument list (no shell); it runs with a timeout, and its exit code and the
tails of stdout/stderr are recorded. A non-zero exit or a timeout is a failed action.

The command gets a scrubbed environment: only the variables in :data:`ENV_ALLOW` (PATH, HOME,
LANG, LC_*, TZ, TMPDIR …) are passed on from the sidecar's environment, plus the action's own
``env``. The sidecar's secrets (``SHIFTWATCH_TOKEN``, cloud credentials, anything else) never
reach it; a command that needs a secret names it in its ``env``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams
from monitor.errors import ActionError

__all__ = ["ENV_ALLOW", "CommandAction", "CommandParams", "scrubbed_env"]

#: variables passed on from the sidecar's environment (everything else is left out)
ENV_ALLOW: frozenset[str] = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "PYTHONIOENCODING", "SYSTEMROOT",
})


def scrubbed_env(extra: Mapping[str, str] | None = None,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command: allow-listed variables of ``base`` (default: this
    process's), ``LC_*`` locale variables, then ``extra`` (the action's own ``env``)."""
    import os

    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in ENV_ALLOW or k.startswith("LC_")}
    env.update(extra or {})
    return env


class CommandParams(ActionParams):
    """Parameters of :class:`CommandAction`."""

    argv: tuple[str, ...] = Field(min_length=1, description="executable and arguments")
    timeout_s: float = Field(30.0, gt=0)
    cwd: str | None = None
    env: dict[str, str] | None = Field(None, description="extra environment variables")


class CommandAction(Action):
    """Run ``argv`` with the alert JSON on stdin."""

    kind: ClassVar[str] = "command"
    Params = CommandParams
    params: CommandParams

    def describe(self, context: ActionContext) -> str:
        return f"run {' '.join(self.params.argv)} with the alert on stdin"

    def _run(self, context: ActionContext) -> ActionOutcome:
        env = scrubbed_env(self.params.env)
        payload = json.dumps(dict(context.alert), default=str)
        try:
            proc = subprocess.run(list(self.params.argv), input=payload, capture_output=True, text=True,
                                  timeout=self.params.timeout_s, cwd=self.params.cwd, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ActionError(f"command {self.params.argv[0]} timed out after "
                              f"{self.params.timeout_s:g}s") from exc
        except OSError as exc:
            raise ActionError(f"command {self.params.argv[0]} could not start: {exc}") from exc
        detail = {"argv": list(self.params.argv), "returncode": proc.returncode,
                  "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
        if proc.returncode != 0:
            detail["error"] = f"exit code {proc.returncode}"
            return ActionOutcome("failed", detail=detail)
        return ActionOutcome("ok", detail=detail)
