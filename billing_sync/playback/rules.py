"""Switching rules: create, list, retire, and decide which rule a key press or a phrase triggers.

A rule has exactly one trigger: a DTMF digit, or a keyword matched in final transcripts
only, as a whole word (or whole phrase), case-insensitively. A rule with a
`conversation_id` applies to that conversation; one without applies to every
conversation the stream watches. When several rules match, the conversation's own rule
wins, then the oldest.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from .. import audit
from ..db import Database
from ..models import SwitchRule, utcnow
from .errors import RuleNotFound
from .media import MediaPolicy, check_media_url

DEFAULT_COOLDOWN_S = 10
DTMF_DIGITS = "0123456789*#ABCD"
# Transcript channels that carry the caller's voice; INTERNAL is the agent.
CALLER_CHANNELS = frozenset({None, "EXTERNAL"})


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What an admin asks for; validated by the API schema, media URL checked here."""

    media_url: str
    dtmf: str | None = None
    keyword: str | None = None
    conversation_id: str | None = None
    cooldown_s: int = DEFAULT_COOLDOWN_S
    loop: bool = False
    max_duration_s: int = 30


def normalise_keyword(keyword: str) -> str:
    """Lower case, single spaces: `Cancel  Order` and `cancel order` are one keyword."""
    return " ".join(keyword.split()).lower()


@lru_cache(maxsize=1024)
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Whole words only: `cancel` matches "Cancel it" and "cancel." but not "cancellation"."""
    words = [re.escape(word) for word in keyword.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def says_keyword(keyword: str, transcript: str) -> bool:
    return keyword_pattern(keyword).search(transcript) is not None


def create_rule(db: Database, spec: RuleSpec, *, api_key_id: int, actor: str, media: MediaPolicy) -> dict[str, Any]:
    """Store a new rule and audit it; MediaRefused when its media URL breaks a rule."""
    check_media_url(spec.media_url, media)
    values = asdict(spec) | {"keyword": normalise_keyword(spec.keyword) if spec.keyword else None}
    with db.write() as session:
        rule = SwitchRule(**values, created_by=api_key_id, created_at=utcnow())
        session.add(rule)
        session.flush()
        audit.append(session, actor, "switch_rule.created", f"switch_rule:{rule.id}", _audit_view(rule))
        return as_dict(rule)


def retire_rule(db: Database, rule_id: int, *, api_key_id: int, actor: str) -> None:
    """Deactivate a rule (it stays on record: the audit log names it); RuleNotFound if not active."""
    with db.write() as session:
        rule = session.execute(
            select(SwitchRule).where(SwitchRule.id == rule_id, SwitchRule.deleted_at.is_(None)).with_for_update()
        ).scalar_one_or_none()
        if rule is None:
            raise RuleNotFound(f"No active switching rule {rule_id}")
        session.execute(update(SwitchRule).where(SwitchRule.id == rule_id)
                        .values(deleted_at=utcnow(), deleted_by=api_key_id))
        audit.append(session, actor, "switch_rule.deleted", f"switch_rule:{rule_id}", _audit_view(rule))


def list_rules(session: Session, *, after_id: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None, bool]:
    """One page of active rules in id order: (items, last id, whether more follow)."""
    query = select(SwitchRule).where(SwitchRule.deleted_at.is_(None)).order_by(SwitchRule.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(SwitchRule.id > after_id)
    rows = list(session.scalars(query))
    page = rows[:limit]
    return [as_dict(rule) for rule in page], (page[-1].id if page else None), len(rows) > limit


def get_rule(session: Session, rule_id: int) -> dict[str, Any]:
    rule = session.execute(
        select(SwitchRule).where(SwitchRule.id == rule_id, SwitchRule.deleted_at.is_(None))
    ).scalar_one_or_none()
    if rule is None:
        raise RuleNotFound(f"No active switching rule {rule_id}")
    return as_dict(rule)


def active_rules(session: Session, conversation_id: str) -> list[SwitchRule]:
    """The rules that apply to a conversation: its own first, then global ones, oldest first."""
    rows = session.scalars(
        select(SwitchRule)
        .where(SwitchRule.deleted_at.is_(None),
               or_(SwitchRule.conversation_id.is_(None), SwitchRule.conversation_id == conversation_id))
        .order_by(SwitchRule.id)
    )
    return sorted(rows, key=lambda rule: (rule.conversation_id is None, rule.id))


def rule_conversations(session: Session) -> set[str]:
    """Conversations that active rules name (the stream watches them even when nothing plays)."""
    return set(session.scalars(
        select(SwitchRule.conversation_id).where(SwitchRule.deleted_at.is_(None),
                                                 SwitchRule.conversation_id.is_not(None)).distinct()
    ))


def rule_for_digit(rules: list[SwitchRule], digit: str) -> SwitchRule | None:
    return next((rule for rule in rules if rule.dtmf == digit), None)


def rule_for_speech(rules: list[SwitchRule], transcript: str) -> SwitchRule | None:
    return next((rule for rule in rules if rule.keyword and says_keyword(rule.keyword, transcript)), None)


def as_dict(rule: SwitchRule) -> dict[str, Any]:
    return {
        "id": rule.id, "dtmf": rule.dtmf, "keyword": rule.keyword, "media_url": rule.media_url,
        "loop": rule.loop, "max_duration_s": rule.max_duration_s, "conversation_id": rule.conversation_id,
        "cooldown_s": rule.cooldown_s, "created_by": rule.created_by, "created_at": rule.created_at,
    }


def _audit_view(rule: SwitchRule) -> dict[str, Any]:
    view = as_dict(rule)
    del view["created_at"], view["id"]
    return view
