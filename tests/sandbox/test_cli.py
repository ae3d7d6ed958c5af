"""`billing-sync sandbox` as a process: prints where it serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx

RUN = [sys.executable, "-c",
       "from billing_sync.sandbox.cli import sandbox_command; sandbox_command()"]


def test_serves_until_sigterm_and_exits_0():
    env = {**os.environ, "GENESYS_CLIENT_ID": "cli-client", "GENESYS_CLIENT_SECRET": "cli-secret"}
    with subprocess.Popen([*RUN, "--port", "0", "--seed", "3", "--time-scale", "10",
                           "--scopes", "conversation:view,analytics:query"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            _talk_then_terminate(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _talk_then_terminate(process: subprocess.Popen) -> None:
    """Read where it serves, use it, then SIGTERM it and expect exit status 0."""
    first = process.stdout.readline()
    base_url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
    assert "ws://127.0.0.1:" in process.stdout.readline()
    token = httpx.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=("cli-client", "cli-secret"), timeout=5)
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    forbidden = httpx.post(f"{base_url}/api/v2/webhooks", json={}, headers=headers, timeout=5)
    assert forbidden.status_code == 403
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_missing_credentials_fail_with_one_clear_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYS_CLIENT")}
    result = subprocess.run([*RUN, "--port", "0"], env=env, capture_output=True, text=True,
                            timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GENESYS_CLIENT_ID" in lines[0]
