"""Switching rules: a key press or a spoken word switches a call's media; and when each last fired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class SwitchRule(Base):
    """When a caller presses `dtmf` or says `keyword`, switch the call's media to `media_url`."""

    __tablename__ = "switch_rules"
    __table_args__ = (
        CheckConstraint("(dtmf IS NULL) <> (keyword IS NULL)", name="one_trigger"),
        CheckConstraint("cooldown_s >= 0", name="cooldown_not_negative"),
        Index(None, "conversation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    dtmf: Mapped[str | None] = mapped_column(String(1))
    keyword: Mapped[str | None] = mapped_column(String(64))
    media_url: Mapped[str] = mapped_column(String(2048))
    loop: Mapped[bool] = mapped_column(default=False)
    max_duration_s: Mapped[int]
    # None: the rule applies to every conversation the stream watches.
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    cooldown_s: Mapped[int]
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Rules are retired, never deleted: the audit log names them as actors.
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))


class SwitchRuleFiring(Base):
    """The last time a rule switched media on a conversation: its cooldown starts there."""

    __tablename__ = "switch_rule_firings"

    rule_id: Mapped[int] = mapped_column(ForeignKey("switch_rules.id"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fired_at: Mapped[datetime]
