"""Applying switching rules: a key press or a spoken keyword switches a playing call's media.

The stream worker hands every DTMF and transcription notification to `Switcher`. A
trigger switches media only when a rule matches, the conversation is playing (a
non-terminal playback in the ledger) and the rule's cooldown for that conversation has
passed. The cooldown is claimed in the database before Genesys Cloud is called, so two
listeners (or a redelivered notification) cannot switch twice. The switch is audited with
the rule as actor; a switch that fails is audited too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..db import Database
from ..genesys.events import Dtmf, Transcription
from ..ledger.events import TERMINAL_STATES
from ..logs import get_logger
from ..models import Playback, SwitchRule, SwitchRuleFiring, utcnow
from .control import PlaybackControl, PlayRequest, Requester
from .errors import PlaybackError
from .rules import CALLER_CHANNELS, active_rules, rule_for_digit, rule_for_speech

log = get_logger("billing_sync.playback.switching")

SWITCHED, NO_RULE, NOT_PLAYING, COOLING_DOWN, FAILED = "switched", "no_rule", "not_playing", "cooling_down", "failed"


class Switcher:
    """Turns DTMF and final transcripts into media switches, per the active rules."""

    def __init__(self, db: Database, control: PlaybackControl, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._control = control
        self._clock = clock

    def on_dtmf(self, dtmf: Dtmf) -> str:
        """Apply the rule for this digit, if any; what happened (SWITCHED, NO_RULE, …)."""
        with self._db.read() as session:
            rule = rule_for_digit(active_rules(session, dtmf.conversation_id), dtmf.digit)
        if rule is None:
            return NO_RULE
        return self._fire(rule, dtmf.conversation_id, {"dtmf": dtmf.digit})

    def on_transcription(self, transcription: Transcription) -> str:
        """Apply the first rule whose keyword a final caller utterance says; partial ones never count."""
        spoken = [u.transcript for u in transcription.utterances if u.is_final and u.channel in CALLER_CHANNELS]
        if not spoken:
            return NO_RULE
        with self._db.read() as session:
            rules = active_rules(session, transcription.conversation_id)
        for transcript in spoken:
            rule = rule_for_speech(rules, transcript)
            if rule is not None:
                return self._fire(rule, transcription.conversation_id,
                                  {"keyword": rule.keyword, "transcript": transcript[:500]})
        return NO_RULE

    def _fire(self, rule: SwitchRule, conversation_id: str, trigger: dict[str, Any]) -> str:
        if not self._is_playing(conversation_id):
            log.info("switch.skipped", rule_id=rule.id, conversation_id=conversation_id, reason=NOT_PLAYING)
            return NOT_PLAYING
        if not self._claim_cooldown(rule, conversation_id):
            log.info("switch.skipped", rule_id=rule.id, conversation_id=conversation_id, reason=COOLING_DOWN)
            return COOLING_DOWN
        actor = f"switch_rule:{rule.id}"
        request = PlayRequest(conversation_id=conversation_id, media_url=rule.media_url, loop=rule.loop,
                              max_duration_s=rule.max_duration_s)
        try:
            switched, _ = self._control.switch(request, Requester(actor=actor), trigger={"trigger": trigger})
        except PlaybackError as error:
            log.warning("switch.failed", rule_id=rule.id, conversation_id=conversation_id, error=error.message)
            with self._db.transaction() as connection:
                audit.append(connection, actor, "playback.switch_failed", f"conversation:{conversation_id}",
                             {"trigger": trigger, "error": type(error).__name__, "message": error.message})
            return FAILED
        log.info("switch.done", rule_id=rule.id, conversation_id=conversation_id,
                 playback_id=switched.started.playback_id, stopped=switched.stopped_playback_id)
        return SWITCHED

    def _is_playing(self, conversation_id: str) -> bool:
        with self._db.read() as session:
            return session.execute(
                select(Playback.id).where(Playback.conversation_id == conversation_id,
                                          Playback.state.not_in(TERMINAL_STATES)).limit(1)
            ).first() is not None

    def _claim_cooldown(self, rule: SwitchRule, conversation_id: str) -> bool:
        """Record that the rule fires now, unless it fired within its cooldown; False then."""
        now = self._clock()
        try:
            with self._db.transaction() as connection:
                last = connection.execute(
                    select(SwitchRuleFiring.fired_at)
                    .where(SwitchRuleFiring.rule_id == rule.id, SwitchRuleFiring.conversation_id == conversation_id)
                    .with_for_update()
                ).scalar_one_or_none()
                if last is not None and now - last < timedelta(seconds=rule.cooldown_s):
                    return False
                if last is None:
                    connection.execute(insert(SwitchRuleFiring).values(
                        rule_id=rule.id, conversation_id=conversation_id, fired_at=now))
                else:
                    connection.execute(
                        update(SwitchRuleFiring)
                        .where(SwitchRuleFiring.rule_id == rule.id, SwitchRuleFiring.conversation_id == conversation_id)
                        .values(fired_at=now))
        except IntegrityError:
            return False  # another listener fired this rule on this conversation at the same moment
        return True
