"""CSV records: RFC 4180 quoting, the formula-injection rule, and the fast path agreeing with the careful one."""

from __future__ import annotations

import csv
import io
import random

import pytest

from billing_sync.audit import datasets
from billing_sync.audit.csv_format import RecordEncoder, header, neutralise, restore

from .helpers import AWKWARD

EVENTS = datasets.get("events")


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-2", "'-2"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("'quoted", "''quoted"), ("plain", "plain"), ("", ""), (" =x", " =x"), ("a=b", "a=b"),
])
def test_text_cells_that_could_start_a_formula_get_one_apostrophe(value, cell):
    assert neutralise(value) == cell
    assert restore(cell) == value


def _row(conversation_id="conv-1", duration="6000", event_id="e1"):
    return ("7", "2026-11-24T02:00:01.000000Z", conversation_id, "pb-1", "completed", duration, "3",
            "webhook", event_id, "2026-11-24T02:00:01.150000Z")


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_negative_integer_column_stays_a_number_while_text_is_neutralised():
    out = RecordEncoder(EVENTS).encode([_row(conversation_id="-5", duration="-150")])
    assert out == "7,2026-11-24T02:00:01.000000Z,'-5,pb-1,completed,-150,3,webhook,e1,2026-11-24T02:00:01.150000Z\r\n"


def test_records_end_in_crlf_and_quote_only_what_they_must():
    out = RecordEncoder(EVENTS).encode([_row(conversation_id='a,"b"\r\nc'), _row()])
    assert out.count("\r\n") == 3  # two record ends and the one inside the quoted cell
    assert '"a,""b""\r\nc"' in out
    assert _parse(out)[0][2] == 'a,"b"\r\nc'
    assert header(EVENTS).startswith("id,occurred_at,conversation_id,") and header(EVENTS).endswith("\r\n")


def test_the_fast_path_and_the_careful_path_always_agree():
    generator = random.Random(7)
    alphabet = ["a", "Z", "0", ",", '"', "\r", "\n", "=", "+", "-", "@", "\t", "'", " ", "é", "✓"]
    encoder = RecordEncoder(EVENTS)
    for _ in range(400):
        rows = []
        for _ in range(generator.randint(1, 6)):
            texts = ["".join(generator.choices(alphabet, k=generator.randint(0, 4))) for _ in range(3)]
            rows.append(_row(conversation_id=texts[0], event_id=texts[1] + generator.choice(AWKWARD),
                             duration=generator.choice(["0", "-1", "42"])))
        assert encoder.encode(rows) == encoder._careful(rows)
        parsed = _parse(encoder.encode(rows))
        assert [(restore(p[2]), p[5], restore(p[8])) for p in parsed] == [(r[2], r[5], r[8]) for r in rows]


def test_the_fast_path_is_taken_for_ordinary_rows():
    encoder = RecordEncoder(EVENTS)
    assert encoder._fast([_row(), _row(event_id="x")]) is not None
    assert encoder._fast([_row(conversation_id="=x")]) is None
    assert encoder._fast([_row(conversation_id="a,b")]) is None
