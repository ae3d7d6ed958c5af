"""Stream evidence for a playback matches what the webhook delivered: same events, same facts."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from billing_sync.genesys.client import GenesysClient
from billing_sync.models import PlaybackEvent

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER
from ..control_fixtures import LONG_MEDIA, SHORT_MEDIA
from ..genesys.sandbox_helpers import wait_until
from .test_stream_worker import ledger_state, play, subscribed

WAIT_S = 10


def evidence(db, playback_id, source):
    with db.read() as session:
        rows = session.scalars(select(PlaybackEvent).where(PlaybackEvent.playback_id == playback_id,
                                                           PlaybackEvent.source == source))
        return sorted((e.source_event_id, e.state, e.duration_ms, e.sequence, e.occurred_at, e.media_url)
                      for e in rows)


def test_stream_evidence_matches_the_webhook(sandbox, calls, control_app, control_settings, control_client,
                                             admin_key, served_app, start_worker):
    db = control_app.extensions["billing_sync"].db
    with GenesysClient.from_settings(control_settings) as genesys:
        genesys.register_webhook("PlaybackBillingSync", f"{served_app}/webhooks/genesys", WEBHOOK_USER,
                                 WEBHOOK_PASSWORD)
    start_worker()
    headers, _ = admin_key()
    conversation_id = calls.place_call()
    first = play(control_client, headers, conversation_id, LONG_MEDIA)
    wait_until(lambda: subscribed(sandbox, conversation_id), timeout_s=WAIT_S, what="the conversation's topics")
    second = play(control_client, headers, conversation_id, SHORT_MEDIA)  # stops the first

    def both_sources_complete(playback_id, terminal):
        return all(any(e[1] == terminal for e in evidence(db, playback_id, source)) for source in ("webhook", "stream"))

    wait_until(lambda: both_sources_complete(second, "completed"), timeout_s=WAIT_S, what="both sources")
    from_webhook, from_stream = evidence(db, second, "webhook"), evidence(db, second, "stream")
    assert from_stream == from_webhook
    assert [e[3] for e in sorted(from_stream, key=lambda e: e[3])] == list(range(1, len(from_stream) + 1))
    assert ledger_state(db, second) == "completed"
    # The first playback was watched from its start onwards only: what the stream saw, the webhook saw too.
    wait_until(lambda: both_sources_complete(first, "stopped"), timeout_s=WAIT_S, what="the first's stop")
    assert set(evidence(db, first, "stream")) <= set(evidence(db, first, "webhook"))
    assert control_client.get(f"/api/v1/playbacks/{second}", headers=headers).json["state"] == "completed"
