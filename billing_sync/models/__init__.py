"""Typed SQLAlchemy models, one module per aggregate."""

from .api_key import ROLES, ApiKey
from .audit import AuditChainHead, AuditEntry
from .base import Base, utcnow
from .playback import Playback, PlaybackEvent

__all__ = [
    "ROLES",
    "ApiKey",
    "AuditChainHead",
    "AuditEntry",
    "Base",
    "Playback",
    "PlaybackEvent",
    "utcnow",
]
