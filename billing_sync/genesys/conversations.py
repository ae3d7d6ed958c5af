"""Calls (§4) and playback control on them (§5)."""

from __future__ import annotations

from .api import GenesysAPI, load, outgoing, segment
from .models import Call, Playback, StoppedPlayback
from .schemas import CallSchema, PlaybackSchema, PlayRequestSchema, StoppedPlaybackSchema

DEFAULT_MAX_DURATION_S = 30

_call = CallSchema()
_playback = PlaybackSchema()
_stopped = StoppedPlaybackSchema()
_play_request = PlayRequestSchema()


class ConversationsAPI(GenesysAPI):
    """GET a call; start and stop media playback on it."""

    def get_call(self, conversation_id: str) -> Call:
        """The call with its participants; NotFound (`not.found`) for an unknown id."""
        response = self.call("GET", f"/api/v2/conversations/calls/{segment(conversation_id)}")
        return load(_call, response)

    def get_conversation(self, conversation_id: str) -> Call:
        """The generic view of a conversation (it also carries a top-level `state`)."""
        response = self.call("GET", f"/api/v2/conversations/{segment(conversation_id)}")
        return load(_call, response)

    def start_playback(
        self, conversation_id: str, url: str, *, loop: bool = False,
        max_duration_s: int = DEFAULT_MAX_DURATION_S,
    ) -> Playback:
        """Play media into the call; a running playback on it ends `stopped` first.

        Never retried: a second POST would start a second (billable) playback. A timeout
        raises GenesysTimeout and the caller learns the outcome from events or `get_call`.
        """
        body = outgoing(_play_request, {"play": {"url": url, "loop": loop, "maxDuration": max_duration_s}})
        response = self.call(
            "POST", f"/api/v2/conversations/voice/{segment(conversation_id)}/actions/play",
            json=body, base=self.playback_base, idempotent=False,
        )
        return load(_playback, response)

    def stop_playback(self, conversation_id: str) -> StoppedPlayback:
        """Stop what is playing on the call; NotFound when nothing is."""
        response = self.call(
            "POST", f"/api/v2/conversations/voice/{segment(conversation_id)}/actions/play/stop",
            base=self.playback_base, idempotent=False,
        )
        return load(_stopped, response)
