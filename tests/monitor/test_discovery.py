"""The discovery file and the backend chooser: live, stale and configured sidecars; a locked file."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.cli.backend import LocalBackend, open_backend
from monitor.discovery import discovery_path, find_sidecar, read_discovery, remove_discovery, write_discovery
from monitor.errors import SidecarError, StoreError
from monitor.server import create_app
from monitor.settings import Settings, load_settings
from tests.server.helpers import ThreadServer, free_port, settings_for, wait_healthy


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_discovery_file_is_private_and_removed_only_by_its_writer(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    path = write_discovery(db, "http://127.0.0.1:1")
    assert path == discovery_path(db) == tmp_path / "x.duckdb.sidecar.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = read_discovery(db)
    assert info is not None and info["url"] == "http://127.0.0.1:1" and info["pid"] == os.getpid()
    remove_discovery(db, pid=os.getpid() + 1)  # not ours: stays
    assert path.exists()
    remove_discovery(db)
    assert not path.exists() and read_discovery(db) is None


def test_stale_discovery_files_are_ignored(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    write_discovery(settings.db_path, "http://127.0.0.1:1", pid=_dead_pid())
    assert find_sidecar(settings) is None  # dead pid
    write_discovery(settings.db_path, f"http://127.0.0.1:{free_port()}")  # live pid, nothing listening
    assert find_sidecar(settings) is None
    discovery_path(settings.db_path).write_text("{not json", encoding="utf-8")
    assert find_sidecar(settings) is None
    with open_backend(db_path=settings.db_path, registry_dir=settings.registry_dir) as backend:
        assert isinstance(backend, LocalBackend)


def test_a_live_sidecar_is_found_through_its_discovery_file_or_shiftwatch_url(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with ThreadServer(create_app(settings, start_scheduler=False, enrich=False)) as server:
        write_discovery(settings.db_path, server.base)
        client = find_sidecar(settings)
        assert client is not None and client.url == server.base
        assert client.models_list() == []
        client.close()
        by_url = find_sidecar(Settings(**{**settings.model_dump(), "db_path": tmp_path / "other.duckdb",
                                          "url": server.base}))
        assert by_url is not None and by_url.reference_list() == []
        by_url.close()
    remove_discovery(settings.db_path)
    gone = Settings(**{**settings.model_dump(), "url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(SidecarError, match="SHIFTWATCH_URL"):
        find_sidecar(gone)


@contextlib.contextmanager
def _serve(app: Any, port: int) -> Iterator[None]:
    """A real uvicorn server for ``app`` on 127.0.0.1:``port``, stopped on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        yield
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_sidecar_advertises_itself_while_it_runs(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _serve(create_app(settings, start_scheduler=False, enrich=False, discovery_url=url), port):
        assert read_discovery(settings.db_path)["url"] == url  # type: ignore[index]
        client = find_sidecar(settings)
        assert client is not None and client.url == url
        client.close()
    assert read_discovery(settings.db_path) is None  # removed on a clean shutdown


def test_a_file_locked_by_another_process_without_a_sidecar_is_a_one_line_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(settings.db_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError) as info:
            LocalBackend(settings).call("reference_list")
        message = str(info.value)
        assert "\n" not in message and "held by another process" in message and "SHIFTWATCH_URL" in message
        assert str(settings.db_path) in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)


def test_the_client_token_comes_from_the_token_setting(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.discovery import client_token

    monkeypatch.delenv("SHIFTWATCH_TOKEN", raising=False)
    assert client_token(settings_for(tmp_path)) == "test-token-123"
    assert client_token(load_settings(db_path=tmp_path / "x.duckdb")) is None


def test_a_busy_sidecar_whose_first_healthz_is_slow_is_still_found(tmp_path: Path) -> None:
    """A sidecar busy on loaded cores (its pid alive) may miss the first 2 s /healthz: the CLI
    tries again with longer timeouts rather than calling the file stale and opening the locked DB."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(time.monotonic())
            if len(calls) == 1:
                time.sleep(3.0)  # past the first try's 2 s timeout, inside the second's 4 s
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = settings_for(tmp_path)
        write_discovery(settings.db_path, f"http://127.0.0.1:{server.server_address[1]}")
        client = find_sidecar(settings)
        assert client is not None and len(calls) == 2
        client.close()
    finally:
        server.shutdown()
        server.server_close()
