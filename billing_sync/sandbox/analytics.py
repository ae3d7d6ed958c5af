"""Conversation details query (contract §9) built from the org's ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .clock import iso_ms, parse_iso
from .errors import GenesysError, invalid
from .org import Conversation, Org, Playback

MAX_INTERVAL = timedelta(days=7)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
MAX_RESULTS = 100_000


@dataclass(frozen=True)
class DetailsQuery:
    start: datetime
    end: datetime
    descending: bool
    page_size: int
    page_number: int
    conversation_ids: frozenset[str] | None
    media_types: frozenset[str] | None


def parse_query(body: Any) -> DetailsQuery:
    """Validate a details query; raises a 400 naming the field."""
    if not isinstance(body, dict):
        raise GenesysError(400, "bad.request", "The request body must be a JSON object")
    interval = body.get("interval")
    if not isinstance(interval, str) or interval.count("/") != 1:
        raise invalid("interval", "must be an ISO-8601 interval start/end")
    try:
        start, end = (parse_iso(part) for part in interval.split("/"))
    except ValueError:
        raise invalid("interval", "must be an ISO-8601 interval start/end with zones") from None
    if end <= start:
        raise invalid("interval", "end must be after start")
    if end - start > MAX_INTERVAL:
        raise invalid("interval", "may not be longer than 7 days")
    order = body.get("order", "asc")
    if order not in ("asc", "desc"):
        raise invalid("order", "must be asc or desc")
    if body.get("orderBy", "conversationStart") != "conversationStart":
        raise invalid("orderBy", "only conversationStart is supported")
    paging = body.get("paging") or {}
    if not isinstance(paging, dict):
        raise invalid("paging", "must be an object")
    page_size = _positive(paging, "pageSize", DEFAULT_PAGE_SIZE)
    page_number = _positive(paging, "pageNumber", 1)
    if page_size > MAX_PAGE_SIZE:
        raise invalid("paging.pageSize", f"may not exceed {MAX_PAGE_SIZE}")
    if page_size * page_number > MAX_RESULTS:
        raise invalid("paging.pageNumber",
                      f"paging is limited to the first {MAX_RESULTS} results; narrow the interval")
    ids, media = _filters(body.get("segmentFilters"), body.get("conversationFilters"))
    return DetailsQuery(start, end, order == "desc", page_size, page_number, ids, media)


def _positive(paging: dict, name: str, default: int) -> int:
    value = paging.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"paging.{name}", "must be a positive integer")
    return value


def _filters(*groups: Any) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """The conversationId and mediaType predicates the sandbox understands (others match all)."""
    ids: set[str] | None = None
    media: set[str] | None = None
    for group in groups:
        for flt in group or []:
            for predicate in (flt or {}).get("predicates") or []:
                dimension, value = predicate.get("dimension"), predicate.get("value")
                if dimension == "conversationId":
                    ids = (ids or set()) | {value}
                elif dimension == "mediaType":
                    media = (media or set()) | {value}
    return (frozenset(ids) if ids is not None else None,
            frozenset(media) if media is not None else None)


def run_query(org: Org, query: DetailsQuery, now: datetime, lag_s: float) -> dict[str, Any]:
    """Answer a details query with what analytics has seen by `now - lag`."""
    horizon = now - timedelta(seconds=lag_s)
    with org.locked():
        matches = [c for c in org.conversations.values()
                   if query.start <= c.start < query.end and c.start <= horizon
                   and (query.conversation_ids is None or c.id in query.conversation_ids)
                   and (query.media_types is None or "voice" in query.media_types)]
        matches.sort(key=lambda c: (c.start, c.id), reverse=query.descending)
        first = (query.page_number - 1) * query.page_size
        page = [_conversation(c, org.playbacks_of(c.id), horizon)
                for c in matches[first:first + query.page_size]]
    # Like Genesys, an empty page has no `conversations` key at all.
    return {"conversations": page, "totalHits": len(matches)} if page else {"totalHits": len(matches)}


def _conversation(conversation: Conversation, playbacks: list[Playback],
                  horizon: datetime) -> dict[str, Any]:
    seen = [p for p in playbacks if p.ended_at is not None and p.ended_at <= horizon]
    end = conversation.end if conversation.end and conversation.end <= horizon else None
    emitted = max((p.ended_at for p in seen if p.ended_at), default=conversation.start)
    metrics = [
        {"name": "nPlayback", "value": len(seen), "emitDate": iso_ms(emitted)},
        {"name": "nPlaybackCompleted", "value": sum(p.state == "completed" for p in seen),
         "emitDate": iso_ms(emitted)},
        {"name": "tPlayback", "value": sum(p.duration_ms for p in seen), "emitDate": iso_ms(emitted)},
    ]
    participants = []
    for participant in conversation.participants:
        segment: dict[str, Any] = {"segmentStart": iso_ms(conversation.start),
                                   "segmentType": "interact" if participant.purpose == "customer"
                                   else "system"}
        if end:
            segment["segmentEnd"] = iso_ms(end)
            segment["disconnectType"] = "endpoint"
        session: dict[str, Any] = {"sessionId": participant.session_id, "mediaType": "voice",
                                   "direction": participant.direction, "ani": participant.ani,
                                   "dnis": participant.dnis, "segments": [segment]}
        if participant.purpose == "customer":
            session["metrics"] = metrics
        participants.append({"participantId": participant.id,
                             "participantName": participant.name,
                             "purpose": participant.purpose, "sessions": [session]})
    view: dict[str, Any] = {"conversationId": conversation.id,
                            "conversationStart": iso_ms(conversation.start),
                            "originatingDirection": "inbound", "participants": participants}
    if end:
        view["conversationEnd"] = iso_ms(end)
    return view
