"""CSV records straight from the database: the same bytes as `csv.writer` over the ORM's rows, on both databases."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, literal, select

from billing_sync import schema
from billing_sync.audit import csv_records, datasets, reading
from billing_sync.audit.csv_format import header, neutralise
from billing_sync.audit.exports import export_csv
from billing_sync.audit.formula import formula_safe
from billing_sync.db import Database
from billing_sync.models import PlaybackEvent

from .helpers import AWKWARD, BASE, add_events
from .test_exports import ALL_TIME, iso

EVENTS = datasets.get("events")


def reference_csv(db) -> bytes:
    """The events export written independently: the ORM's values, `neutralise` and `csv.writer`."""
    with db.read() as session:
        events = session.scalars(select(PlaybackEvent).order_by(PlaybackEvent.occurred_at, PlaybackEvent.id)).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for e in events:
        writer.writerow([e.id, iso(e.occurred_at), neutralise(e.conversation_id), neutralise(e.playback_id),
                         neutralise(e.state), e.duration_ms, e.sequence, neutralise(e.source),
                         neutralise(e.source_event_id), iso(e.received_at)])
    return (header(EVENTS) + out.getvalue()).encode()


def add_clean_then_awkward_events(db) -> None:
    """Plain rows first, then rows whose cells need quoting and neutralising, some of them empty."""
    add_events(db, 40)
    add_events(db, 40, start=40, awkward=True)
    with db.transaction() as connection:
        connection.execute(insert(PlaybackEvent), [{
            "source": "", "source_event_id": f"empty-{n}", "playback_id": "", "conversation_id": "",
            "state": "", "duration_ms": 0, "sequence": n, "media_url": None, "payload": {},
            "occurred_at": BASE.replace(hour=3, second=n), "received_at": BASE.replace(hour=3, second=n),
        } for n in range(3)])


def test_sql_neutralises_text_exactly_as_python_does(db):
    generator = random.Random(11)
    alphabet = ["a", "0", ",", '"', "\r", "\n", "=", "+", "-", "@", "\t", "'", " ", "é", "✓", "日"]
    values = AWKWARD + ["".join(generator.choices(alphabet, k=generator.randint(1, 3))) for _ in range(60)]
    with db.transaction() as connection:
        cells = connection.execute(select(*(formula_safe(literal(v)) for v in values))).one()
    assert list(cells) == [neutralise(v) for v in values]


@pytest.mark.parametrize("batch_rows", [7, 5000])
def test_the_csv_export_is_csv_writer_byte_for_byte(db, tmp_path, monkeypatch, batch_rows):
    monkeypatch.setattr(reading, "BATCH_ROWS", batch_rows)
    add_clean_then_awkward_events(db)
    result = export_csv(db, EVENTS, ALL_TIME, tmp_path / "events.csv", actor="test")
    assert (tmp_path / "events.csv").read_bytes() == reference_csv(db)
    assert result.rows == {"events": 83}


# A NUL inside, at the end, alone, and in cells that are neutralised (one byte longer than stored).
@pytest.mark.parametrize("cell", ["a\x00b", "ab\x00", "\x00", "=a\x00", "=\x00", "-\x00x", "'\x00"])
def test_a_nul_character_in_a_text_cell_is_exported_whole(db, tmp_path, monkeypatch, cell):
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL text cannot hold a NUL character")
    monkeypatch.setattr(reading, "BATCH_ROWS", 7)
    add_events(db, 20)
    with db.transaction() as connection:
        connection.execute(insert(PlaybackEvent), [{
            "source": "webhook", "source_event_id": "nul\x00id", "playback_id": "pb-nul", "conversation_id": cell,
            "state": "completed", "duration_ms": 1, "sequence": 9, "media_url": None, "payload": {},
            "occurred_at": BASE.replace(hour=3), "received_at": BASE.replace(hour=3),
        }, {
            "source": "webhook", "source_event_id": "nul-2", "playback_id": "pb-nul", "conversation_id": cell,
            "state": "completed", "duration_ms": 1, "sequence": 10, "media_url": None, "payload": {},
            "occurred_at": BASE.replace(hour=4), "received_at": BASE.replace(hour=4),
        }])
    add_events(db, 20, start=5000)  # after them: 04:05
    export_csv(db, EVENTS, ALL_TIME, tmp_path / "events.csv", actor="test")
    assert (tmp_path / "events.csv").read_bytes() == reference_csv(db)
    assert neutralise(cell).encode() in (tmp_path / "events.csv").read_bytes()


def test_spaces_in_text_cells_stay_on_the_printed_path_byte_for_byte(db, tmp_path, monkeypatch):
    """A batch holding a text cell with a space (among timestamps printed with theirs) is mended, not abandoned."""
    monkeypatch.setattr(reading, "BATCH_ROWS", 7)
    add_events(db, 20)
    with db.transaction() as connection:
        connection.execute(insert(PlaybackEvent), [{
            "source": "webhook", "source_event_id": f"evt {n}", "playback_id": f" pb-{n}", "conversation_id": f"conv {n} ",
            "state": "completed", "duration_ms": 1, "sequence": n, "media_url": None, "payload": {},
            "occurred_at": BASE.replace(hour=3, second=n), "received_at": BASE.replace(hour=3, second=n),
        } for n in range(3)])
    add_events(db, 20, start=20)

    def refused(*args, **kwargs):
        raise AssertionError("the export left the printed path")

    if db.dialect == "sqlite":
        monkeypatch.setattr(csv_records, "_encoded", refused)
    export_csv(db, EVENTS, ALL_TIME, tmp_path / "events.csv", actor="test")
    assert (tmp_path / "events.csv").read_bytes() == reference_csv(db)
    assert b",conv 0 , pb-0," in (tmp_path / "events.csv").read_bytes()


def test_each_way_of_reading_gives_the_same_records(db, monkeypatch):
    """The dialect's fast way (COPY or printf, switching to cells mid-export) and cells encoded in Python."""
    monkeypatch.setattr(reading, "BATCH_ROWS", 7)
    add_clean_then_awkward_events(db)
    with reading.snapshot(db) as connection:
        fast = list(csv_records.batches(connection, EVENTS, ALL_TIME))
    with reading.snapshot(db) as connection:
        cells = list(csv_records._encoded(connection, EVENTS, ALL_TIME, 7))
    assert b"".join(data for _, data in fast) == b"".join(data for _, data in cells)
    assert [rows for rows, _ in fast] == [rows for rows, _ in cells] == [7] * 11 + [6]


def test_sqlite_and_postgresql_export_the_same_rows_byte_for_byte(db, tmp_path):
    if db.dialect != "postgresql":
        pytest.skip("compares this PostgreSQL database with a SQLite one: runs in the PostgreSQL pass")
    lite = Database.from_url(f"sqlite:///{tmp_path / 'lite.db'}")
    try:
        schema.upgrade(lite.engine)
        for database in (db, lite):
            add_clean_then_awkward_events(database)
        window = datasets.Window(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
        export_csv(db, EVENTS, window, tmp_path / "pg.csv", actor="test")
        export_csv(lite, EVENTS, window, tmp_path / "lite.csv", actor="test")
    finally:
        lite.dispose()
    assert (tmp_path / "pg.csv").read_bytes() == (tmp_path / "lite.csv").read_bytes()
    assert (tmp_path / "pg.csv").read_bytes().count(b"\r\n") > 84
