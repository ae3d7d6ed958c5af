"""The audit chain: appends in the caller's transaction, concurrency, tamper detection."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from billing_sync import audit
from billing_sync.models import AuditEntry, utcnow


def test_appends_chain_and_verify(db):
    with db.write() as session:
        first = audit.append(session, "cli", "api_key.created", "api_key:1", {"role": "admin"})
        second = audit.append(session, "cli", "thing.done", "thing:2", {"n": 2, "nested": {"b": 1, "a": [1, "x"]}})
    assert (first.id, second.id) == (1, 2)
    assert first.prev_hash == audit.GENESIS_HASH and second.prev_hash == first.hash
    with db.read() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.verified == 2 and report.head == second.hash


def test_entries_chained_by_the_database_verify_between_entries_chained_here(db):
    details = {"note": 'café ☕ "quoted" \\ back\nline', "nested": {"id": 0, "subject": "x"}, "n": [1, 2.5, None, True]}
    with db.transaction() as connection:
        audit.append(connection, "cli", "first", "x:1")
        audit.append_chained(connection, [
            audit.NewEntry("genesys:webhook", "billing.charge.created", "billing_record:7", details),
            audit.NewEntry("genesys:webhook", "thing.done", "thing:é", None),
        ], at_commit=True)
        audit.append(connection, "cli", "after", "x:2")  # chained onto the entries still waiting for the commit
    with db.transaction() as connection:
        audit.append_chained(connection, [audit.NewEntry("cli", "last", "x:3", {"k": "v"})], at_commit=True)
    with db.read() as session:
        report = audit.verify_chain(session)
        subjects = list(session.scalars(select(AuditEntry.subject).order_by(AuditEntry.id)))
    assert report.ok and report.verified == 5
    assert subjects == ["x:1", "billing_record:7", "thing:é", "x:2", "x:3"]


def test_entries_rendered_by_their_writer_chain_between_entries_chained_here(db):
    details = {"note": 'café ☕ "quoted" \\ back\nline', "nested": {"id": 0, "subject": "x"}, "n": [1, 2.5, None]}
    with db.transaction() as connection:
        audit.append(connection, "cli", "first", "x:1")
        at = utcnow()
        audit.append_rendered(connection, [
            audit.rendered(audit.NewEntry("reconciliation", "billing.charge.created", "billing_record:7", details), at),
            audit.rendered(audit.NewEntry("reconciliation", "thing.done", "thing:é", None), at),
        ], at)
        audit.append(connection, "cli", "after", "x:2")
    with db.read() as session:
        report = audit.verify_chain(session)
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert report.ok and report.verified == 4
    assert [(e.subject, e.details) for e in entries[1:3]] == [("billing_record:7", details), ("thing:é", {})]
    assert entries[1].created_at == at


@pytest.mark.parametrize("details", [
    None, {}, {"amount_minor": 60, "corrects": None, "currency": "EUR", "key": 'p-"é"\\☕\n'},
    {"nested": {"id": 0, "subject": "x"}, "n": [1, 2.5, None, True, {"b": 1, "a": 2}]},
    {2: "two", 10: "ten"}, {"pair": (1, "x")},
], ids=["none", "empty", "flat", "nested", "number-keys", "tuple"])
def test_a_rendered_entry_hashes_as_its_canonical_json(details):
    """What the database hashes (the rendered text around the id) is `entry_hash`'s canonical
    JSON of the entry as it is read back."""
    at = datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2)))
    entry = audit.NewEntry("genesys:wébhook", "billing.charge.created", 'billing_record:"7"', details)
    rendered = audit.rendered(entry, at)
    stored = json.loads(rendered.details)
    assert stored == json.loads(json.dumps(details or {}))
    prev = "ab" * 32
    assert hashlib.sha256(f"{prev}{rendered.body_head}42{rendered.body_tail}".encode()).hexdigest() == \
        audit.entry_hash(prev, id=42, created_at=at, actor=entry.actor, action=entry.action, subject=entry.subject,
                         details=stored)


def test_an_empty_chain_verifies(db):
    with db.read() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.verified == 0 and report.head == audit.GENESIS_HASH


def test_a_rolled_back_transaction_leaves_no_entry_and_no_gap(db):
    with pytest.raises(RuntimeError), db.write() as session:
        audit.append(session, "cli", "doomed", "x:1")
        raise RuntimeError("abort")
    with db.write() as session:
        entry = audit.append(session, "cli", "kept", "x:2")
    assert entry.id == 1
    with db.read() as session:
        assert audit.verify_chain(session).ok


def test_concurrent_writers_keep_one_unbroken_chain(db):
    writers, per_writer = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with db.write() as session:
                    audit.append(session, f"writer:{n}", "test.write", f"item:{n}:{i}", {"i": i})
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    with db.read() as session:
        report = audit.verify_chain(session)
        subjects = set(session.scalars(select(AuditEntry.subject)))
    assert report.ok, report
    assert report.verified == writers * per_writer == len(subjects)


def test_the_database_refuses_updates_and_deletes(db):
    with db.write() as session:
        audit.append(session, "cli", "a", "x:1")
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), db.write() as session:
            session.execute(text(statement))


class _Rollback(Exception):
    pass


def _drop_guards(session, dialect: str) -> None:
    if dialect == "postgresql":
        session.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
    else:
        session.execute(text("DROP TRIGGER audit_log_no_update"))
        session.execute(text("DROP TRIGGER audit_log_no_delete"))


@pytest.mark.parametrize(("tamper", "reason"), [
    ("UPDATE audit_log SET details = '{\"role\": \"viewer\"}' WHERE id = 2", "hash mismatch"),
    ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", "hash mismatch"),
    ("DELETE FROM audit_log WHERE id = 2", "gap in ids"),
    ("DELETE FROM audit_log WHERE id = 3", "head does not match chain"),
])
def test_tampering_is_caught_with_the_entry_id(db, tamper, reason):
    with db.write() as session:
        for n in range(3):
            audit.append(session, "cli", "api_key.created", f"api_key:{n}", {"role": "admin"})
    # Done in one transaction that is rolled back: the guards are back for the next test.
    with pytest.raises(_Rollback), db.write() as session:
        _drop_guards(session, db.dialect)
        session.execute(text(tamper))
        report = audit.verify_chain(session)
        raise _Rollback
    assert not report.ok and report.reason == reason
    assert report.broken_id in (2, 3)
