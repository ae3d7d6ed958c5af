"""A run's evidence and discrepancies must name a run that exists, and runs are kept
(migration 0010: on PostgreSQL statement triggers in place of the foreign keys; SQLite
keeps its keys)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DatabaseError, IntegrityError

from billing_sync.models import AnalyticsConversation, Discrepancy, ReconciliationRun

pytestmark = pytest.mark.db


def _evidence(run_id: int, conversation_id: str = "conv-1") -> dict:
    return {"run_id": run_id, "conversation_id": conversation_id, "conversation_start": None, "playbacks": 1,
            "completed": 1, "played_ms": 1000}


def _discrepancy(run_id: int, conversation_id: str = "conv-1") -> dict:
    return {"run_id": run_id, "kind": "state_conflict", "status": "open", "conversation_id": conversation_id,
            "playback_id": "pb-1"}


@pytest.fixture
def run_id(db, ledger, analytics, run):
    ledger.playback("stream")  # a missing webhook: the run writes a discrepancy and heals it
    analytics.report("conv-1", playbacks=1, completed=1, played_ms=30_000)
    return run().run_id


def _count(db, model) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(("model", "row"), [(AnalyticsConversation, _evidence), (Discrepancy, _discrepancy)])
def test_rows_naming_a_run_that_does_not_exist_are_refused(db, run_id, model, row):
    before = _count(db, model)
    with pytest.raises(IntegrityError), db.transaction() as connection:
        # One statement with a good row and a bad one: all of it is refused.
        connection.execute(insert(model), [row(run_id, "conv-a"), row(run_id + 1, "conv-b")])
    assert _count(db, model) == before


@pytest.mark.parametrize("model", [AnalyticsConversation, Discrepancy])
def test_moving_rows_to_a_run_that_does_not_exist_is_refused(db, run_id, model):
    with pytest.raises(IntegrityError), db.transaction() as connection:
        connection.execute(update(model).where(model.run_id == run_id).values(run_id=run_id + 7))
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(model).where(model.run_id == run_id)) > 0


def test_rows_of_an_existing_run_are_accepted(db, run_id):
    with db.transaction() as connection:
        connection.execute(insert(AnalyticsConversation), [_evidence(run_id, "conv-new")])
        connection.execute(insert(Discrepancy), [_discrepancy(run_id)])


@pytest.mark.parametrize("statement", [
    "DELETE FROM reconciliation_runs",
    "UPDATE reconciliation_runs SET id = id + 100",
])
def test_runs_are_kept(db, run_id, statement):
    with pytest.raises(DatabaseError, match="reconciliation runs are kept"), db.transaction() as connection:
        connection.execute(text(statement))
    assert _count(db, ReconciliationRun) == 1


def test_a_run_s_other_columns_may_still_change(db, run_id):
    with db.transaction() as connection:
        connection.execute(update(ReconciliationRun).values(analytics_conversations=42))
