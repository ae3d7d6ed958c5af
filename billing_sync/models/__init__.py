"""Typed SQLAlchemy models, one module per aggregate."""

from .api_key import ROLES, ApiKey
from .audit import AuditChainHead, AuditEntry
from .base import Base, utcnow
from .billing import (
    DELIVERY_ANSWERS, DELIVERY_OUTCOMES, OUTBOX_STATUSES, RECORD_KINDS, BillingRecord, DeliveryCount, OutboxMessage,
)
from .idempotency import IdempotencyRecord
from .stream import StreamListener
from .switch_rule import SwitchRule, SwitchRuleFiring
from .playback import Playback, PlaybackEvent
from .reconciliation import (
    DISCREPANCY_KINDS, DISCREPANCY_STATUSES, AnalyticsConversation, Discrepancy, ReconciliationRun,
)

__all__ = [
    "AnalyticsConversation",
    "DISCREPANCY_KINDS",
    "DISCREPANCY_STATUSES",
    "Discrepancy",
    "ReconciliationRun",
    "ROLES",
    "ApiKey",
    "AuditChainHead",
    "AuditEntry",
    "Base",
    "BillingRecord",
    "DELIVERY_ANSWERS",
    "DELIVERY_OUTCOMES",
    "DeliveryCount",
    "OUTBOX_STATUSES",
    "OutboxMessage",
    "RECORD_KINDS",
    "IdempotencyRecord",
    "Playback",
    "PlaybackEvent",
    "StreamListener",
    "SwitchRule",
    "SwitchRuleFiring",
    "utcnow",
]
