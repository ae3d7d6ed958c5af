"""CSV records: RFC 4180 quoting, the formula-injection rule, and the fast path agreeing with the careful one."""

from __future__ import annotations

import csv
import io
import random

import pytest

from billing_sync.audit import datasets
from billing_sync.audit.csv_format import RecordEncoder, header, needs_no_quoting, neutralise, restore
from billing_sync.audit.csv_records import crlf

from .helpers import AWKWARD

EVENTS = datasets.get("events")
ACTIONS = datasets.get("actions")


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-2", "'-2"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("'quoted", "''quoted"), ("plain", "plain"), ("", ""), (" =x", " =x"), ("a=b", "a=b"),
])
def test_text_cells_that_could_start_a_formula_get_one_apostrophe(value, cell):
    assert neutralise(value) == cell
    assert restore(cell) == value


def _row(conversation_id="conv-1", duration="6000", event_id="e1"):
    """An events row as `Dataset.select(as_text=True)` reads it: text cells already neutralised by SQL."""
    return ("7", "2026-11-24T02:00:01.000000Z", neutralise(conversation_id), "pb-1", "completed", duration, "3",
            "webhook", neutralise(event_id), "2026-11-24T02:00:01.150000Z")


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_records_end_in_crlf_and_quote_only_what_they_must():
    out = RecordEncoder(EVENTS).encode([_row(conversation_id='a,"b"\r\nc'), _row(duration="-150")])
    assert out.count("\r\n") == 3  # two record ends and the one inside the quoted cell
    assert '"a,""b""\r\nc"' in out
    assert _parse(out)[0][2] == 'a,"b"\r\nc'
    assert out.endswith(",-150,3,webhook,e1,2026-11-24T02:00:01.150000Z\r\n")  # a negative integer stays a number
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
        assert [(p[2], p[5], p[8]) for p in parsed] == [(r[2], r[5], r[8]) for r in rows]


@pytest.mark.parametrize(("cell", "plain"), [
    ("conv-1", True), ("=x", True), ("'=x", True), ("a,b", False), ('say "hi"', False), ("a\nb", False),
    ("a\rb", False), ("crlf\r\nend", False),
])
def test_the_fast_path_is_taken_unless_a_cell_needs_quoting(cell, plain):
    encoder = RecordEncoder(EVENTS)
    assert (encoder._fast([_row(), _row(conversation_id=cell)]) is not None) is plain
    text = "".join(",".join(row) + "\r\n" for row in ([_row(), _row(conversation_id=cell)]))
    assert needs_no_quoting(text, 2, len(EVENTS.columns)) is plain


def test_json_cells_are_rendered_and_neutralised_in_python():
    row = ("3", "2026-11-24T02:00:01.000000Z", "cli", "thing.done", "thing:1", -5, "0" * 64, "f" * 64)
    out = RecordEncoder(ACTIONS).encode([row, row[:5] + ({"b": 1, "a": "x"},) + row[6:]])
    assert _parse(out)[0][5] == "'-5"
    assert _parse(out)[1][5] == '{"a":"x","b":1}'


def _copy_record(cells: list[str]) -> str:
    """A record as PostgreSQL's COPY (FORMAT csv) writes it: a cell holding , " CR or LF quoted; LF at the end."""
    quoted = ['"' + c.replace('"', '""') + '"' if any(x in c for x in ',"\r\n') else c for c in cells]
    return ",".join(quoted) + "\n"


def test_crlf_ends_copy_records_with_crlf_and_leaves_quoted_line_breaks_alone():
    generator = random.Random(3)
    alphabet = ["a", ",", '"', "\r", "\n", "\r\n", "é", ""]
    for _ in range(300):
        rows = [["".join(generator.choices(alphabet, k=generator.randint(0, 3))) or "x" for _ in range(3)]
                for _ in range(generator.randint(1, 5))]
        expected = io.StringIO()
        csv.writer(expected, lineterminator="\r\n").writerows(rows)
        assert crlf("".join(map(_copy_record, rows)).encode()) == expected.getvalue().encode()
