"""API keys: created once, shown once, stored as a SHA-256, checked by role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import ROLES, ApiKey

KEY_PREFIX = "bsk_"
# admin ⊃ finance ⊃ viewer
RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: int
    name: str
    role: str

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, role: str, name: str, actor: str) -> tuple[ApiKey, str]:
    """A new key for `role`; returns the row and the key itself, which is never stored."""
    if role not in RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, role=role, prefix=key[: len(KEY_PREFIX) + 6], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    audit.append(
        session, actor=actor, action="api_key.created", subject=f"api_key:{row.id}",
        details={"role": role, "name": name, "prefix": row.prefix},
    )
    return row, key


def authenticate(session: Session, key: str) -> Caller | None:
    """The caller a presented key belongs to, or None if unknown or revoked."""
    row = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.role)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else Caller(key_id=row.id, name=row.name, role=row.role)
