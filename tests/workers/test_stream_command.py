"""`billing-sync stream` as a real process: connects, shows its state, exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import subprocess

import pytest
from sqlalchemy import select

from billing_sync.keys import create_key
from billing_sync.models import StreamListener
from billing_sync.playback.media import MediaPolicy
from billing_sync.playback.rules import RuleSpec, create_rule
from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET

from ..control_fixtures import MEDIA_HOST, OTHER_MEDIA
from ..e2e.conftest import BILLING_SYNC, service_env
from ..genesys.sandbox_helpers import wait_until


def listener(db, shard="0/1"):
    with db.read() as session:
        return session.scalar(select(StreamListener).where(StreamListener.shard == shard))


@pytest.mark.e2e
def test_the_listener_connects_and_stops_cleanly_on_sigterm(database_url, db, sandbox, calls, tmp_path):
    conversation_id = calls.place_call()
    with db.write() as session:
        row, _ = create_key(session, role="admin", name="rules", actor="test")
    create_rule(db, RuleSpec(media_url=OTHER_MEDIA, dtmf="1", conversation_id=conversation_id),
                api_key_id=row.id, actor="test", media=MediaPolicy((MEDIA_HOST,)))
    env = service_env(database_url, GENESYS_ENVIRONMENT=sandbox.base_url, GENESYS_CLIENT_ID=TEST_CLIENT_ID,
                      GENESYS_CLIENT_SECRET=TEST_CLIENT_SECRET, MEDIA_ALLOWED_HOSTS=MEDIA_HOST, LOG_LEVEL="INFO")
    process = subprocess.Popen([str(BILLING_SYNC), "stream", "--refresh-s", "0.2"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: process.poll() is not None or (listener(db) is not None and listener(db).state == "connected"),
                   timeout_s=20, what="the listener to connect")
        assert process.poll() is None, process.stderr.read().decode()
        assert sandbox.platform.channels.subscribers(f"v2.conversations.{conversation_id}.dtmf")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    assert "stream listener 0/1 stopped" in stderr.decode()
    state = listener(db)
    assert (state.state, state.channels_connected, state.topics, state.pid) == ("stopped", 0, 3, process.pid)


def test_a_bad_shard_is_a_usage_error(database_url, tmp_path):
    result = subprocess.run([str(BILLING_SYNC), "stream", "--shard", "2/2"], cwd=tmp_path, env=service_env(database_url),
                            capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"--shard" in result.stderr


def test_without_genesys_credentials_it_says_which_setting(database_url, tmp_path):
    result = subprocess.run([str(BILLING_SYNC), "stream"], cwd=tmp_path, env=service_env(database_url),
                            capture_output=True, timeout=30)
    assert result.returncode == 1
    assert b"GENESYS_CLIENT_ID" in result.stderr
