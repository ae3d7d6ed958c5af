"""Genesys Cloud error bodies (the SDK's ErrorBody) and the exception that carries one."""

from __future__ import annotations

from typing import Any

# Messages as Genesys Cloud words them for its common codes.
MESSAGES = {
    "bad.request": "The request could not be understood by the server due to malformed syntax.",
    "not.found": "The requested resource was not found.",
    "method.not.allowed": "The requested method is not allowed for this resource.",
    "unsupported.media.type": "Unsupported Media Type - Unsupported or incorrect media type, "
    "such as an incorrect Content-Type value in the header.",
    "authentication.required": "No authentication bearer token specified in authorization header.",
    "bad.credentials": "Invalid login credentials.",
    "internal.server.error": "The server encountered an unexpected condition which prevented it "
    "from fulfilling the request.",
}

CODES_BY_STATUS = {
    400: "bad.request",
    401: "bad.credentials",
    403: "not.authorized",
    404: "not.found",
    405: "method.not.allowed",
    409: "conflict",
    415: "unsupported.media.type",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    503: "service.unavailable",
}


class GenesysError(Exception):
    """An API failure answered with Genesys's error body, a status and optional headers."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        field: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code or CODES_BY_STATUS.get(status, "bad.request")
        self.message = message or MESSAGES.get(self.code, self.code)
        self.field = field
        self.params = params or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self, context_id: str) -> dict[str, Any]:
        """The JSON body Genesys Cloud sends with this failure."""
        details: list[dict[str, str]] = []
        if self.field:
            details.append({"errorCode": self.code, "fieldName": self.field})
        return error_body(self.status, self.code, self.message, context_id,
                          details=details, params=self.params)


def error_body(
    status: int,
    code: str,
    message: str,
    context_id: str,
    *,
    details: list[dict[str, str]] | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Build an ErrorBody: message, code, status, messageParams, contextId, details, errors."""
    return {
        "message": message,
        "code": code,
        "status": status,
        "messageParams": params or {},
        "contextId": context_id,
        "details": details or [],
        "errors": [],
    }


def invalid(field: str, message: str) -> GenesysError:
    """A 400 naming the field at fault, worded like Genesys's `invalid.value`."""
    return GenesysError(400, "invalid.value", f"{field}: {message}", field=field)
