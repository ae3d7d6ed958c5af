"""Starting, stopping and switching media on live calls through Genesys Cloud.

Each action validates the media URL first (nothing goes out for a refused URL), checks
that the conversation is playable, calls Genesys Cloud, then records what it did in one
transaction: the playback as `requested` with who asked, the idempotency outcome, and the
audit entry (last, as the audit chain requires). Genesys errors become domain errors
(`errors.py`); api/ maps those to HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from .. import audit
from ..config import ConfigError
from ..db import Database
from ..genesys import errors as genesys
from ..genesys.client import GenesysClient
from ..models import Playback, utcnow
from . import idempotency
from .errors import (
    ControlNotConfigured, ConversationNotFound, GenesysBusy, GenesysFailed, GenesysNoAnswer, GenesysRefused,
    MediaRejected, NothingPlaying, NotPlayable, PlaybackError,
)
from .media import MediaPolicy, check_media_url

DEFAULT_MAX_DURATION_S = 30
MAX_DURATION_S = 3600


@dataclass(frozen=True, slots=True)
class PlayRequest:
    """Media to play on a conversation."""

    conversation_id: str
    media_url: str
    loop: bool = False
    max_duration_s: int = DEFAULT_MAX_DURATION_S


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: an API key (`api_key:3`) or a switching rule (`switch_rule:7`, no key)."""

    actor: str
    api_key_id: int | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """A playback Genesys Cloud accepted, as recorded in the ledger."""

    playback_id: str
    conversation_id: str
    media_url: str
    loop: bool
    max_duration_s: int
    requested_by: int | None
    requested_at: datetime
    state: str = "requested"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"requested_at": self.requested_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Started:
        return cls(**(data | {"requested_at": datetime.fromisoformat(data["requested_at"])}))


@dataclass(frozen=True, slots=True)
class Stopped:
    playback_id: str
    conversation_id: str
    state: str = "stopped"


@dataclass(frozen=True, slots=True)
class Switched:
    """The playback a switch stopped (None when nothing was playing) and the one it started."""

    stopped_playback_id: str | None
    started: Started

    def as_dict(self) -> dict[str, Any]:
        return {"stopped_playback_id": self.stopped_playback_id, "started": self.started.as_dict()}


class PlaybackControl:
    """Start, stop and switch media; `genesys` gives this process's client (built on first use)."""

    def __init__(self, db: Database, genesys_client: Callable[[], GenesysClient], media: MediaPolicy) -> None:
        self._db = db
        self._genesys = genesys_client
        self.media = media

    def start(self, request: PlayRequest, requester: Requester, *, idempotency_key: str | None = None) -> tuple[Started, bool]:
        """Play media on a live call; (the playback, whether this answer replays an earlier one)."""
        check_media_url(request.media_url, self.media)
        outcome, replayed = self._idempotent("start", request, requester, idempotency_key, self._start_now)
        return Started.from_dict(outcome), replayed

    def switch(
        self, request: PlayRequest, requester: Requester, *, idempotency_key: str | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> tuple[Switched, bool]:
        """Stop what the call is playing (if anything), then play new media; one audit entry."""
        check_media_url(request.media_url, self.media)
        work = lambda req, who, claim: self._switch_now(req, who, claim, trigger or {})  # noqa: E731
        outcome, replayed = self._idempotent("switch", request, requester, idempotency_key, work)
        return Switched(outcome["stopped_playback_id"], Started.from_dict(outcome["started"])), replayed

    def stop(self, conversation_id: str, requester: Requester) -> Stopped:
        """Stop what the call is playing; NothingPlaying when nothing is."""
        client = self._client()
        with _translated(mutating=True):
            try:
                stopped = client.stop_playback(conversation_id)
            except genesys.NotFound as error:
                raise NothingPlaying(f"Nothing to stop: {error.message}") from None
        result = Stopped(playback_id=stopped.id, conversation_id=conversation_id)
        with self._db.transaction() as connection:
            audit.append(connection, requester.actor, "playback.stop_requested", f"playback:{result.playback_id}",
                         {"conversation_id": conversation_id})
        return result

    # --- the work, once the idempotency key (if any) is ours -------------------------

    def _start_now(self, request: PlayRequest, requester: Requester, claim: idempotency.Claim | None) -> dict:
        client = self._client()
        self._require_playable(client, request.conversation_id)
        started = self._play(client, request, requester)
        with self._db.transaction() as connection:
            record_request(connection, started)
            outcome = started.as_dict()
            if claim is not None:
                idempotency.settle(connection, claim, {"result": outcome})
            audit.append(connection, requester.actor, "playback.started", f"playback:{started.playback_id}",
                         _details(request))
        return outcome

    def _switch_now(self, request: PlayRequest, requester: Requester, claim: idempotency.Claim | None,
                    trigger: dict[str, Any]) -> dict:
        client = self._client()
        self._require_playable(client, request.conversation_id)
        with _translated(mutating=True):
            try:
                stopped_id: str | None = client.stop_playback(request.conversation_id).id
            except genesys.NotFound:
                stopped_id = None  # the call is there (checked above) and simply not playing
        try:
            started = self._play(client, request, requester)
        except PlaybackError:
            if stopped_id is not None:
                self._audit_partial_switch(request, requester, stopped_id, trigger)
            raise
        outcome = Switched(stopped_id, started).as_dict()
        with self._db.transaction() as connection:
            record_request(connection, started)
            if claim is not None:
                idempotency.settle(connection, claim, {"result": outcome})
            audit.append(connection, requester.actor, "playback.switched", f"playback:{started.playback_id}",
                         _details(request) | {"stopped_playback_id": stopped_id, **trigger})
        return outcome

    def _require_playable(self, client: GenesysClient, conversation_id: str) -> None:
        with _translated(mutating=False):
            call = client.get_call(conversation_id)
        if not call.playable:
            raise NotPlayable(f"Conversation {conversation_id} has no connected customer or external participant")

    def _play(self, client: GenesysClient, request: PlayRequest, requester: Requester) -> Started:
        with _translated(mutating=True):
            played = client.start_playback(request.conversation_id, request.media_url, loop=request.loop,
                                           max_duration_s=request.max_duration_s)
        return Started(
            playback_id=played.id, conversation_id=request.conversation_id, media_url=request.media_url,
            loop=request.loop, max_duration_s=request.max_duration_s, requested_by=requester.api_key_id,
            requested_at=utcnow(),
        )

    def _audit_partial_switch(self, request: PlayRequest, requester: Requester, stopped_id: str,
                              trigger: dict[str, Any]) -> None:
        with self._db.transaction() as connection:
            audit.append(connection, requester.actor, "playback.stop_requested", f"playback:{stopped_id}",
                         {"conversation_id": request.conversation_id, "switch_failed": True, **trigger})

    def _idempotent(self, action: str, request: PlayRequest, requester: Requester, key: str | None,
                    work: Callable[[PlayRequest, Requester, idempotency.Claim | None], dict]) -> tuple[dict, bool]:
        """Run `work` once per idempotency key: (its outcome, whether it was replayed)."""
        if key is None or requester.api_key_id is None:
            return work(request, requester, None), False
        claim = idempotency.claim(self._db, api_key_id=requester.api_key_id, key=key,
                                  request_fingerprint=idempotency.fingerprint(action, **asdict(request)))
        if claim.replay is not None:
            return _replay(claim.replay), True
        try:
            return work(request, requester, claim), False
        except PlaybackError as error:
            if error.may_have_happened:
                with self._db.transaction() as connection:
                    idempotency.settle(connection, claim, {"error": _stored_error(error)})
            else:
                idempotency.release(self._db, claim)
            raise

    def _client(self) -> GenesysClient:
        try:
            return self._genesys()
        except ConfigError as error:
            raise ControlNotConfigured(f"Playback control is not configured: {error}") from None


def record_request(connection: Connection, started: Started) -> None:
    """The playback as `requested` by whom; its events may already have created the row."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    now = utcnow()
    statement = dialect.insert(Playback).values(
        playback_id=started.playback_id, conversation_id=started.conversation_id, state="requested",
        last_sequence=None, duration_ms=0, media_url=started.media_url, requested_by=started.requested_by,
        created_at=now, updated_at=now,
    )
    connection.execute(statement.on_conflict_do_update(
        index_elements=[Playback.playback_id],
        set_={"requested_by": statement.excluded.requested_by,
              "media_url": func.coalesce(Playback.media_url, statement.excluded.media_url),
              "updated_at": now},
    ))


def _details(request: PlayRequest) -> dict[str, Any]:
    return {"conversation_id": request.conversation_id, "media_url": request.media_url,
            "loop": request.loop, "max_duration_s": request.max_duration_s}


_REPLAYABLE_ERRORS = {cls.__name__: cls for cls in (GenesysNoAnswer, GenesysFailed)}


def _stored_error(error: PlaybackError) -> dict[str, str]:
    return {"type": type(error).__name__, "message": error.message}


def _replay(outcome: dict[str, Any]) -> dict:
    if "error" in outcome:
        cls = _REPLAYABLE_ERRORS[outcome["error"]["type"]]
        raise cls(outcome["error"]["message"], may_have_happened=True)
    return outcome["result"]


@contextmanager
def _translated(*, mutating: bool) -> Iterator[None]:
    """Genesys errors as domain errors; `mutating`: the call may change something (a POST)."""
    try:
        yield
    except genesys.NotFound as error:
        raise ConversationNotFound(f"Genesys Cloud: {error.message}") from None
    except genesys.Conflict as error:
        raise NotPlayable(f"Genesys Cloud: {error.message}") from None
    except genesys.BadRequest as error:
        raise MediaRejected(f"Genesys Cloud refused the play request: {error.message}") from None
    except genesys.Forbidden as error:
        missing = ", ".join(error.missing) or "(not named)"
        raise GenesysRefused(f"Genesys Cloud refused our OAuth client: missing scope {missing}",
                             missing=error.missing) from None
    except genesys.Unauthorized:
        raise GenesysRefused("Genesys Cloud rejected our OAuth client credentials "
                             "(GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET)") from None
    except genesys.RateLimited as error:
        raise GenesysBusy("Genesys Cloud is rate-limiting us; retry later", retry_after=error.retry_after) from None
    except genesys.GenesysTimeout as error:
        raise GenesysNoAnswer(f"Genesys Cloud did not answer in time: {error}",
                              may_have_happened=mutating) from None
    except genesys.GenesysError as error:
        raise GenesysFailed(f"Genesys Cloud failed: {error}", may_have_happened=mutating) from None
