"""Delivery attempts counted in the database by outcome and answer, as /metrics reports them."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from billing_sync.models import OutboxMessage
from billing_sync.workers.dispatcher import DispatchStats

from ..metrics.conftest import scrape
from .conftest import charge, dispatcher, outbox_counts, run_until_settled


def test_attempts_and_failures_match_every_post_the_dispatchers_made(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 4)
    sink.fail(500)
    assert dispatcher(db, settings, sink).dispatch_batch(threading.Event(), DispatchStats())
    sink.fail(None)
    run_until_settled(dispatcher(db, settings, sink), db)
    charge(client, webhook_auth, events, 2)
    sink.fail(410)
    run_until_settled(dispatcher(db, settings, sink), db)  # a second dispatcher adds to the same totals

    metrics = scrape(client)
    assert outbox_counts(db) == {"delivered": 4, "dead": 2}
    assert metrics.labelled("billing_sync_delivery_attempts_total") == {
        frozenset({("outcome", "delivered")}): 4, frozenset({("outcome", "retry")}): 4,
        frozenset({("outcome", "dead")}): 2,
    }
    assert metrics.labelled("billing_sync_delivery_failures_total") == {
        frozenset({("answer", answer)}): count
        for answer, count in {"2xx": 0, "3xx": 0, "4xx": 2, "5xx": 4, "none": 0}.items()
    }
    with db.read() as session:
        attempts = session.scalar(select(func.sum(OutboxMessage.attempts)))
    assert sum(metrics.labelled("billing_sync_delivery_attempts_total").values()) == attempts == 10
    # The sink saw every POST: 4 failed then delivered, 2 refused for good.
    assert sum(r["attempts"] for r in sink.received()) == 4 * 2
    assert metrics.value("billing_sync_outbox_messages", status="dead") == 2
    assert metrics.value("billing_sync_outbox_messages", status="pending") == 0


def test_an_unreachable_billing_system_counts_as_no_answer(client, webhook_auth, events, db, settings, sink):
    charge(client, webhook_auth, events, 3)
    nowhere = type(sink)("http://127.0.0.1:9")  # nothing listens on the discard port
    assert dispatcher(db, settings, nowhere).dispatch_batch(threading.Event(), DispatchStats())
    metrics = scrape(client)
    assert metrics.value("billing_sync_delivery_failures_total", answer="none") == 3
    assert metrics.value("billing_sync_delivery_attempts_total", outcome="retry") == 3
