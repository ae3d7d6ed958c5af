"""Bearer API keys on /api/v1: who is calling, and may they."""

from __future__ import annotations

from functools import wraps

from flask import g, request
from flask_smorest import abort

from .. import services
from ..keys import Caller, authenticate

BEARER_DOC = {"security": [{"bearerAuth": []}]}


def require_role(role: str):
    """Allow the view only to callers whose key has `role` or a higher one (documented by the route)."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            caller = _caller()
            if not caller.may(role):
                abort(403, message=f"This needs the {role} role; the key presented is {caller.role}")
            g.caller = caller
            return view(*args, **kwargs)

        guarded.required_role = role
        return guarded

    return decorate


def _caller() -> Caller:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        abort(401, message="Missing API key: send Authorization: Bearer <key>",
              headers={"WWW-Authenticate": 'Bearer realm="billing-sync"'})
    with services().db.read() as session:
        caller = authenticate(session, key.strip())
    if caller is None:
        abort(401, message="Unknown or revoked API key",
              headers={"WWW-Authenticate": 'Bearer realm="billing-sync", error="invalid_token"'})
    return caller
