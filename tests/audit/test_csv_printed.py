"""SQLite's printed records, proved and finished a batch at a time: the bytes SQL's own rendering would give."""

from __future__ import annotations

import pytest

from billing_sync.audit import datasets
from billing_sync.audit.csv_printed import Printed

EVENTS = datasets.get("events")
BILLING = datasets.get("billing")


def printed_record(*cells: str) -> str:
    """A record as `printf` writes an events row: timestamps as stored, a Z after each."""
    return ",".join(cells) + "\r\n"


PLAIN = printed_record("1", "2026-11-24 02:00:00.000001Z", "conv-1", "pb-1", "started", "0", "1", "webhook", "evt-1",
                       "2026-11-24 02:00:00.150001Z")
FINISHED = b"1,2026-11-24T02:00:00.000001Z,conv-1,pb-1,started,0,1,webhook,evt-1,2026-11-24T02:00:00.150001Z\r\n"


def test_a_plain_batch_gets_its_timestamps_finished_at_once():
    assert Printed(EVENTS).render(PLAIN * 3, 3) == FINISHED * 3


SPACED = printed_record("2", "2026-11-24 02:00:01.000000Z", "conv 2", " pb-2", "started ", "0", "1", "web hook",
                        "evt-2", "2026-11-24 02:00:01.150000Z")


def test_the_padded_way_refuses_any_other_space_it_may_be_a_cell_cut_at_a_nul():
    assert Printed(EVENTS).render(PLAIN + SPACED, 2) is None


def test_the_careful_way_keeps_a_space_in_a_text_cell_and_still_finishes_the_timestamps():
    out = Printed(EVENTS, careful=True).render(PLAIN + SPACED + PLAIN, 3)
    assert out == FINISHED + (
        b"2,2026-11-24T02:00:01.000000Z,conv 2, pb-2,started ,0,1,web hook,evt-2,2026-11-24T02:00:01.150000Z\r\n"
    ) + FINISHED


def test_a_timestamp_stored_in_another_shape_is_rendered_as_sql_would():
    # Written by raw SQL: no space, or two; SQL's replace(value, ' ', 'T') || 'Z' is the reference.
    odd = printed_record("3", "2026-11-24Z", "c", "p", "s", "0", "1", "w", "e", "2026-11-24 02:00:01 .5Z")
    assert Printed(EVENTS, careful=True).render(odd, 1) == b"3,2026-11-24Z,c,p,s,0,1,w,e,2026-11-24T02:00:01T.5Z\r\n"


@pytest.mark.parametrize("careful", [False, True])
@pytest.mark.parametrize("cell", ['say "hi"', "a,b", "line\nbreak", "cr\rhere", "crlf\r\nend", 'sp "ace'])
def test_a_batch_with_a_cell_that_needs_quoting_is_refused(cell, careful):
    awkward = printed_record("4", "2026-11-24 02:00:01.000000Z", cell, "p", "s", "0", "1", "w", "e",
                             "2026-11-24 02:00:01.150000Z")
    assert Printed(EVENTS, careful=careful).render(PLAIN + awkward, 2) is None


@pytest.mark.parametrize("careful", [False, True])
def test_the_record_count_must_match(careful):
    assert Printed(EVENTS, careful=careful).render(PLAIN * 2, 3) is None
    assert Printed(EVENTS, careful=careful).render(PLAIN * 2, 1) is None


def test_a_timestamp_that_can_be_null_is_rendered_in_sql():
    names = [c.name for c in BILLING.columns]
    printed = Printed(BILLING)
    assert [names[i] for i in printed._stamps] == ["created_at"]  # delivered_at is NULL until delivered
