"""Call control for demos and tests: place calls, hang up, press keys, speak."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .clock import Clock, iso_ms
from .errors import GenesysError
from .events import Publisher, dtmf_topic, transcription_topic
from .org import Conversation, Org, Participant
from .playback import PlaybackLifecycle
from .randomness import SeededStream

DTMF_DIGITS = set("0123456789*#ABCD")
DEFAULT_ANI = "tel:+15550100"
DEFAULT_DNIS = "tel:+15550199"


class CallControl:
    """What the /sandbox/ control API does to calls."""

    def __init__(self, org: Org, clock: Clock, publisher: Publisher, lifecycle: PlaybackLifecycle,
                 ids: SeededStream) -> None:
        self._org = org
        self._clock = clock
        self._publisher = publisher
        self._lifecycle = lifecycle
        self._ids = ids

    def place_call(self, ani: str | None = None, dnis: str | None = None) -> Conversation:
        """A connected inbound call: the customer and the IVR flow that answered."""
        now = self._clock.now()
        ani, dnis = ani or DEFAULT_ANI, dnis or DEFAULT_DNIS
        customer = Participant(id=self._ids.uuid(), purpose="customer", name="Customer",
                               address=ani, ani=ani, dnis=dnis, start_time=now,
                               connected_time=now, session_id=self._ids.uuid())
        ivr = Participant(id=self._ids.uuid(), purpose="ivr", name="Inbound Call Flow",
                          address=dnis, ani=ani, dnis=dnis, start_time=now,
                          connected_time=now, session_id=self._ids.uuid())
        conversation = Conversation(id=self._ids.uuid(), start=now, participants=[customer, ivr])
        with self._org.locked() as org:
            org.conversations[conversation.id] = conversation
        return conversation

    def hang_up(self, conversation_id: str) -> None:
        """Disconnect every participant; a running playback ends `stopped`."""
        with self._org.locked():
            conversation = self._conversation(conversation_id)
            if conversation.end is not None:
                return
            now = self._clock.now()
            self._lifecycle.stop_for_disconnect(conversation_id, now)
            for participant in conversation.participants:
                participant.state = "disconnected"
                participant.end_time = now
            conversation.end = now

    def press(self, conversation_id: str, digit: Any) -> None:
        """The caller presses a key: a dtmf notification."""
        if not isinstance(digit, str) or digit not in DTMF_DIGITS:
            raise GenesysError(400, "invalid.value", "digit: must be one of 0-9 * # A-D",
                               field="digit")
        with self._org.locked():
            self._connected(conversation_id)
            body = {"conversationId": conversation_id, "digit": digit,
                    "timestamp": iso_ms(self._clock.now())}
            self._publisher.publish(dtmf_topic(conversation_id), body)

    def speak(self, conversation_id: str, text: Any) -> None:
        """The caller says something: a final transcription notification."""
        if not isinstance(text, str) or not text.strip():
            raise GenesysError(400, "invalid.value", "text: must be a non-empty string",
                               field="text")
        with self._org.locked():
            conversation = self._connected(conversation_id)
            now = self._clock.now()
            duration_ms = max(500, 400 * len(text.split()))
            offset = now - conversation.start - timedelta(milliseconds=duration_ms)
            body = {
                "eventTime": iso_ms(now),
                "organizationId": self._org.org_id,
                "conversationId": conversation_id,
                "communicationId": conversation.customer.session_id,
                "transcripts": [{
                    "utteranceId": self._ids.uuid(),
                    "isFinal": True,
                    "channel": "EXTERNAL",
                    "alternatives": [{
                        "confidence": 0.92,
                        "transcript": text.strip(),
                        "offsetMs": max(0, int(offset / timedelta(milliseconds=1))),
                        "durationMs": duration_ms,
                    }],
                }],
            }
            self._publisher.publish(transcription_topic(conversation_id), body)

    def _conversation(self, conversation_id: str) -> Conversation:
        conversation = self._org.conversations.get(conversation_id)
        if conversation is None:
            raise GenesysError(404, "not.found",
                               f"Unable to find a conversation with id {conversation_id}")
        return conversation

    def _connected(self, conversation_id: str) -> Conversation:
        conversation = self._conversation(conversation_id)
        if conversation.end is not None:
            raise GenesysError(409, "conversation.not.connected",
                               f"Conversation {conversation_id} has ended")
        return conversation


def call_conversation_view(conversation: Conversation) -> dict[str, Any]:
    """GET /api/v2/conversations/calls/{id}: a CallConversation."""
    return {
        "id": conversation.id,
        "participants": [p.call_view() for p in conversation.participants],
        "otherMediaUris": [],
        "recordingState": "none",
        "securePause": False,
        "selfUri": f"/api/v2/conversations/calls/{conversation.id}",
    }


def generic_conversation_view(conversation: Conversation) -> dict[str, Any]:
    """GET /api/v2/conversations/{id}: a Conversation, with its top-level `state`."""
    return {
        "id": conversation.id,
        "startTime": iso_ms(conversation.start),
        "endTime": iso_ms(conversation.end) if conversation.end else None,
        "address": conversation.customer.dnis,
        "participants": [p.generic_view() for p in conversation.participants],
        "recordingState": "NONE",
        "state": conversation.state,
        "divisions": [],
        "securePause": False,
        "selfUri": f"/api/v2/conversations/{conversation.id}",
    }
