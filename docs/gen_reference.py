"""Write the generated reference pages (``docs/reference/``) from the code itself.

- ``cli.md``: every ``shiftwatch`` command's ``--help``, walked from the typer app;
- ``http.md``: every route of ``monitor.server.create_app`` from its OpenAPI schema.

The Python reference (``python.md``) is static ``::: module`` directives that mkdocstrings
renders at build time. Run by ``make docs`` before ``mkdocs build``; no network.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ["TYPER_USE_RICH"] = "0"  # plain --help text; read by typer at import

import typer

OUT = Path(__file__).resolve().parent / "reference"


def _commands(group: Any, prefix: str) -> list[tuple[str, Any]]:
    # duck-typed: typer 0.29 builds its commands on its own vendored click, not `click.Group`
    found = [(prefix, group)]
    sub: dict[str, Any] = getattr(group, "commands", None) or {}
    for name in sorted(sub):
        found += _commands(sub[name], f"{prefix} {name}")
    return found


def cli_page() -> str:
    from monitor.cli import _register_all, app

    _register_all()
    root = typer.main.get_command(app)
    lines = ["# CLI reference", "", "Generated from the typer app (`docs/gen_reference.py`).", ""]
    for path, cmd in _commands(root, "shiftwatch"):
        with cmd.context_class(cmd, info_name=path) as ctx:
            text = cmd.get_help(ctx)
        lines += [f"## `{path}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


def http_page() -> str:
    from monitor.server import create_app
    from monitor.settings import Settings

    logging.getLogger("monitor.server").setLevel(logging.ERROR)  # "auth is off": true, and only here

    app = create_app(Settings(db_path=":memory:", auth="off"), start_scheduler=False)
    schema: dict[str, Any] = app.openapi()
    lines = ["# HTTP reference", "",
             "Generated from the sidecar's OpenAPI schema (`docs/gen_reference.py`). Every route but "
             "`/healthz` needs the bearer token when one is set.", "",
             "| method | path | summary |", "|---|---|---|"]
    for path, ops in sorted(schema.get("paths", {}).items()):
        for method, op in sorted(ops.items()):
            summary = (op.get("summary") or op.get("description") or "").splitlines()[0] if op else ""
            lines.append(f"| `{method.upper()}` | `{path}` | {summary.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cli.md").write_text(cli_page() + "\n")
    (OUT / "http.md").write_text(http_page())
    print(f"wrote {OUT / 'cli.md'} and {OUT / 'http.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
