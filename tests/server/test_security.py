"""Hardening of the sidecar (issue 13): tokens, file permissions, command environment, Slack
escaping, header timeout under a real uvicorn, /metrics label cardinality."""

from __future__ import annotations

import json
import logging
import socket
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from collectors.spool import Spool
from monitor.actions.base import ActionContext
from monitor.actions.command import CommandAction, scrubbed_env
from monitor.actions.notify import build_payload, slack_escape
from monitor.errors import ConfigError
from monitor.httpserver import uvicorn_config
from monitor.metrics import ServerMetrics
from monitor.server import create_app
from monitor.settings import Settings, load_settings, resolve_token
from monitor.store import Store
from tests.server.helpers import AUTH, TOKEN, ThreadServer, free_port, record, settings_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["", "   ", "\n"])
def test_an_empty_token_is_a_startup_error(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError, match="empty"):
        create_app(settings_for(tmp_path, token=token), start_scheduler=False)


def test_no_token_at_all_is_a_startup_error_unless_auth_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="SHIFTWATCH_AUTH=off"):
        create_app(settings_for(tmp_path, token=None), start_scheduler=False)
    with caplog.at_level(logging.WARNING, logger="monitor.server"):
        app = create_app(settings_for(tmp_path, token=None, auth="off"), start_scheduler=False,
                         enrich=False)
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 200


def test_empty_token_from_the_environment_fails_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTWATCH_TOKEN", "")
    settings = load_settings(None, db_path=tmp_path / "x.duckdb")
    with pytest.raises(ConfigError, match="empty"):
        settings.bearer_token()


def test_token_file_is_trimmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")  # a mounted Kubernetes secret
    monkeypatch.setenv("SHIFTWATCH_TOKEN_FILE", str(secret))
    assert resolve_token() == TOKEN
    settings = load_settings(None, db_path=tmp_path / "x.duckdb", reports_dir=tmp_path / "r",
                             registry_dir=tmp_path / "m")
    assert settings.bearer_token() == TOKEN
    with TestClient(create_app(settings, start_scheduler=False, enrich=False)) as c:
        assert c.get("/metrics", headers=AUTH).status_code == 200
        assert c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    secret.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        settings.bearer_token()
    with pytest.raises(ConfigError, match="not both"):
        Settings(token="a", token_file=secret).bearer_token()


# -- files ----------------------------------------------------------------------------------
def test_store_and_spool_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dir" / "x.duckdb"
    with Store(db) as store:
        store.insert_predictions([record(0)])
        assert _mode(db) == 0o600 and _mode(db.parent) == 0o700
    spool = Spool(tmp_path / "spool")
    path = spool.put("predictions", b"{}", 1)
    assert path is not None and _mode(path) == 0o600 and _mode(tmp_path / "spool") == 0o700


@pytest.mark.slow
def test_serve_writes_db_and_wal_owner_only(tmp_path: Path) -> None:
    from tests.server.helpers import subprocess_sidecar

    db = tmp_path / "data" / "side.duckdb"
    with subprocess_sidecar(db, tmp_path) as (_, base):
        r = httpx.post(f"{base}/v1/predictions", json={"records": [record(i) for i in range(20)]},
                       headers=AUTH, timeout=30)
        assert r.status_code == 202
        wal = db.with_name(db.name + ".wal")
        assert wal.exists()  # committed, not yet checkpointed
        assert _mode(db) == 0o600 and _mode(wal) == 0o600 and _mode(db.parent) == 0o700
        assert _mode(tmp_path / "reports") == 0o700


# -- command actions --------------------------------------------------------------------------
def test_command_env_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTWATCH_TOKEN", "top-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    out = tmp_path / "env.json"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    action = CommandAction({"argv": [sys.executable, "-c", code], "env": {"MY_HOOK_KEY": "k"}})
    settings = settings_for(tmp_path)
    outcome = action._run(ActionContext(store=None, settings=settings,  # type: ignore[arg-type]
                                        alert={"rule": "r"}, now=datetime.now(UTC)))
    assert outcome.status == "ok", outcome.detail
    env = json.loads(out.read_text())
    assert "SHIFTWATCH_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["MY_HOOK_KEY"] == "k" and env["LC_ALL"] == "C.UTF-8" and "PATH" in env
    assert scrubbed_env(base={"SHIFTWATCH_TOKEN": "x", "HOME": "/h"}) == {"HOME": "/h"}


# -- Slack ----------------------------------------------------------------------------------
def test_slack_text_is_escaped() -> None:
    assert slack_escape("a & <b> <!channel>") == "a &amp; &lt;b&gt; &lt;!channel&gt;"
    alert = {"rule": "r", "severity": "warning", "model_name": "<!channel> <http://evil|click>",
             "model_version": "v&1", "description": "drift on <@U123>"}
    body = build_payload(alert, "slack")
    # every mrkdwn-interpreted text (the top-level text, sections, fields) is escaped; the
    # plain_text header is shown verbatim by Slack and needs none
    mrkdwn = json.dumps([body["text"], body["blocks"][1:]])
    assert "<!channel>" not in mrkdwn and "<http://evil" not in mrkdwn and "<@U123>" not in mrkdwn
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    assert body["blocks"][1]["text"]["text"] == "drift on &lt;@U123&gt;"
    assert "*model_version:* v&amp;1" in [f["text"] for f in body["blocks"][2]["fields"]]


# -- uvicorn limits ---------------------------------------------------------------------------
def _read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    data = b""
    while True:
        chunk = sock.recv(4096)  # socket.timeout (a failure) if the server never closes
        if not chunk:
            return data
        data += chunk


def test_a_connection_stalled_mid_headers_is_closed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, port=free_port(), header_timeout_s=1.0, timeout_keep_alive_s=1.0)
    app = create_app(settings, start_scheduler=False, enrich=False)
    with ThreadServer(app, settings) as server:
        port = settings.port
        with socket.create_connection(("127.0.0.1", port)) as sock:  # half a request head
            sock.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Ty")
            answer = _read_until_closed(sock, 15.0)
        assert answer.startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", port)) as sock:  # connects, sends nothing
            assert _read_until_closed(sock, 15.0).startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a slow but complete head
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            time.sleep(0.3)
            sock.sendall(b"Host: x\r\n\r\n")
            assert _read_until_closed(sock, 15.0).startswith(b"HTTP/1.1 200")  # then keep-alive ends
        # and ordinary clients are unaffected
        r = httpx.post(f"{server.base}/v1/predictions", json={"records": [record(1)]}, headers=AUTH)
        assert r.status_code == 202


def test_serve_config_sets_the_limits(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, limit_concurrency=7, max_header_bytes=8192, timeout_keep_alive_s=3)
    config = uvicorn_config(object(), settings)
    assert (config.limit_concurrency, config.h11_max_incomplete_event_size, config.timeout_keep_alive) == (
        7, 8192, 3)
    assert config.http.header_timeout_s == settings.header_timeout_s


# -- /metrics cardinality -------------------------------------------------------------------
def test_metrics_label_values_are_capped_and_folds_counted() -> None:
    with Store(":memory:") as store:
        long_name = "x" * 200  # the longest name the codec accepts
        recs = [record(i, model=f"model-{i:03d}", dim=None) for i in range(150)]
        recs.append(record(999, model=long_name, dim=None))
        store.insert_predictions(recs)
        text = ServerMetrics(lambda: store, max_label_values=100).render().decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("shiftwatch_predictions_stored{")]
    models = {ln.split('model="')[1].split('"')[0] for ln in lines}
    assert len(models) == 101 and "other" in models  # 100 kept, the rest folded into one series
    total = sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)
    assert total == 151.0  # nothing disappears: folded counts add up
    assert all(len(m) <= 120 for m in models)
    folded = [ln for ln in text.splitlines() if ln.startswith("shiftwatch_metrics_labels_folded_total")]
    assert folded and float(folded[0].rsplit(" ", 1)[1]) >= 51
