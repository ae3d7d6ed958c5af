"""Playback metrics from the conversation details query (§9), over any interval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ..logs import get_logger
from .api import GenesysAPI, load, outgoing
from .errors import GenesysError
from .models import ConversationPlaybacks, PlaybackMetrics
from .schemas import MAX_PAGE_SIZE, DetailsPageSchema, DetailsQuerySchema

DETAILS_QUERY_PATH = "/api/v2/analytics/conversations/details/query"
MAX_QUERY_INTERVAL = timedelta(days=7)
# Genesys refuses to page past this many results of one query.
MAX_QUERY_RESULTS = 100_000
# Below this an interval is not split further: something else is wrong.
MIN_SPLIT_INTERVAL = timedelta(minutes=1)

_details_page = DetailsPageSchema()
_details_query = DetailsQuerySchema()
log = get_logger("billing_sync.genesys.analytics")


class AnalyticsAPI(GenesysAPI):
    """Conversation details, reduced to what billing compares: playbacks per conversation."""

    def conversation_playback_metrics(self, since: datetime, until: datetime) -> PlaybackMetrics:
        """Playback counts, played milliseconds and completion rate per conversation in [since, until).

        Intervals over 7 days are split (Genesys refuses them); each part is paged until its
        `totalHits` is covered. A conversation reported by two parts counts once.
        """
        since, until = _utc(since, "since"), _utc(until, "until")
        if since >= until:
            raise ValueError("since must be before until")
        found: dict[str, ConversationPlaybacks] = {}
        for start, end in split_interval(since, until, MAX_QUERY_INTERVAL):
            for conversation in self._playbacks_in(start, end):
                found.setdefault(conversation.conversation_id, conversation)
        ordered = sorted(found.values(), key=lambda c: (c.started_at or since, c.conversation_id))
        return PlaybackMetrics(since=since, until=until, conversations=tuple(ordered))

    def _playbacks_in(self, start: datetime, end: datetime) -> Iterator[ConversationPlaybacks]:
        page_number = 1
        while True:
            page = self._details_page(start, end, page_number)
            total = page["totalHits"]
            if page_number == 1 and total > MAX_QUERY_RESULTS:
                yield from self._split_playbacks(start, end, total)
                return
            yield from page["conversations"]
            if not page["conversations"] or page_number * MAX_PAGE_SIZE >= total:
                return
            page_number += 1

    def _split_playbacks(self, start: datetime, end: datetime, total: int) -> Iterator[ConversationPlaybacks]:
        if end - start <= MIN_SPLIT_INTERVAL:
            raise GenesysError(
                f"{total} conversations between {format_instant(start)} and {format_instant(end)}: "
                f"more than the {MAX_QUERY_RESULTS} one query can page through",
                method="POST", path=DETAILS_QUERY_PATH,
            )
        middle = start + (end - start) / 2
        log.info("genesys.analytics.split", interval=format_interval(start, end), total_hits=total)
        yield from self._playbacks_in(start, middle)
        yield from self._playbacks_in(middle, end)

    def _details_page(self, start: datetime, end: datetime, page_number: int) -> dict:
        body = outgoing(_details_query, {
            "interval": format_interval(start, end),
            "order": "asc",
            "orderBy": "conversationStart",
            "paging": {"pageSize": MAX_PAGE_SIZE, "pageNumber": page_number},
            "segmentFilters": [{"type": "and", "predicates": [{"dimension": "mediaType", "value": "voice"}]}],
        })
        # A query only reads, so repeating it after a 5xx or a reset is safe.
        response = self.call("POST", DETAILS_QUERY_PATH, json=body, idempotent=True)
        return load(_details_page, response)


def split_interval(since: datetime, until: datetime, longest: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into consecutive parts no longer than `longest`."""
    parts = []
    start = since
    while start < until:
        # Compared before adding: start + longest may pass the last datetime near the year 9999.
        end = until if until - start <= longest else start + longest
        parts.append((start, end))
        start = end
    return parts


def format_instant(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as Genesys Cloud writes instants."""
    # isoformat, not strftime: %Y writes the year 273 as "273", which is not ISO 8601.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_interval(start: datetime, end: datetime) -> str:
    """An ISO 8601 interval `start/end` in UTC."""
    return f"{format_instant(start)}/{format_instant(end)}"


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)
