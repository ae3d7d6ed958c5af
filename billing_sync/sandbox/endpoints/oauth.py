"""POST /oauth/token: the client-credentials grant (contract §2)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..tokens import OAuthError
from .guard import platform

bp = Blueprint("sandbox_oauth", __name__)


@bp.post("/oauth/token")
def issue_token() -> Response | tuple[Response, int]:
    """Exchange the client's credentials for a bearer token."""
    issuer = platform().tokens
    try:
        token = issuer.issue(request.headers.get("Authorization"), request.form.to_dict())
    except OAuthError as error:
        return jsonify(error.body()), error.status
    return jsonify({"access_token": token.value, "token_type": "bearer",
                    "expires_in": issuer.ttl_s})
