"""Which trigger fires which rule: whole words, final caller transcripts only, specific rules first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync.genesys.events import Dtmf, Transcription, Utterance
from billing_sync.playback import switching
from billing_sync.playback.control import PlaybackControl
from billing_sync.playback.media import MediaPolicy
from billing_sync.playback.rules import RuleSpec, create_rule, keyword_pattern, normalise_keyword, says_keyword
from billing_sync.playback.switching import Switcher

MEDIA = "https://media.example.com/a.wav"
NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.mark.parametrize(("keyword", "transcript", "says"), [
    ("cancel", "cancel", True),
    ("cancel", "Please CANCEL my order", True),
    ("cancel", "cancel.", True),
    ("cancel", "(cancel)", True),
    ("cancel", "cancellation", False),
    ("cancel", "precancel", False),
    ("cancel", "can cel", False),
    ("cancel order", "please Cancel   Order now", True),
    ("cancel order", "cancel the order", False),
    ("c++", "I like c++ a lot", True),
    ("état", "l'ÉTAT c'est moi", True),
])
def test_keywords_match_whole_words_case_insensitively(keyword, transcript, says):
    assert says_keyword(normalise_keyword(keyword), transcript) is says


def test_keyword_patterns_escape_regex_syntax():
    assert keyword_pattern("a.b").search("axb") is None


def utterance(text, *, final=True, channel="EXTERNAL"):
    return Utterance(utterance_id="u", is_final=final, channel=channel, transcript=text, confidence=0.9,
                     offset_ms=0, duration_ms=500)


class NoGenesys:
    """A client that must not be used: these triggers never reach Genesys Cloud."""

    def __getattr__(self, name):
        raise AssertionError(f"Genesys Cloud was called: {name}")


@pytest.fixture
def switcher(db):
    policy = MediaPolicy(("media.example.com",))
    control = PlaybackControl(db, lambda: NoGenesys(), policy)
    with db.write() as session:
        from billing_sync.keys import create_key

        row, _ = create_key(session, role="admin", name="a", actor="test")
    create_rule(db, RuleSpec(media_url=MEDIA, keyword="cancel"), api_key_id=row.id, actor="test", media=policy)
    create_rule(db, RuleSpec(media_url=MEDIA, dtmf="1"), api_key_id=row.id, actor="test", media=policy)
    return Switcher(db, control)


def test_partial_and_agent_transcripts_never_trigger(switcher):
    for said in (utterance("cancel", final=False), utterance("cancel", channel="INTERNAL")):
        transcription = Transcription(conversation_id="c-1", communication_id=None, occurred_at=NOW,
                                      utterances=(said,))
        assert switcher.on_transcription(transcription) == switching.NO_RULE


def test_a_trigger_on_a_call_that_is_not_playing_switches_nothing(switcher):
    said = Transcription(conversation_id="c-1", communication_id=None, occurred_at=NOW, utterances=(utterance("Cancel!"),))
    assert switcher.on_transcription(said) == switching.NOT_PLAYING
    assert switcher.on_dtmf(Dtmf(conversation_id="c-1", digit="1", occurred_at=NOW)) == switching.NOT_PLAYING
    assert switcher.on_dtmf(Dtmf(conversation_id="c-1", digit="2", occurred_at=NOW)) == switching.NO_RULE


def test_the_conversation_s_own_rule_wins_over_a_global_one(db, switcher):
    from billing_sync.keys import create_key
    from billing_sync.playback.rules import active_rules, rule_for_digit

    with db.write() as session:
        row, _ = create_key(session, role="admin", name="b", actor="test")
    own = create_rule(db, RuleSpec(media_url=MEDIA, dtmf="1", conversation_id="c-9"), api_key_id=row.id,
                      actor="test", media=MediaPolicy(("media.example.com",)))
    with db.read() as session:
        assert rule_for_digit(active_rules(session, "c-9"), "1").id == own["id"]
        assert rule_for_digit(active_rules(session, "c-8"), "1").id != own["id"]
