"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, one `v1,` signature per secret.

Signed with the reference `standardwebhooks` library, so what we send is by construction
what its verifier (and every port of it) accepts. During a rotation every configured
secret signs, space-separated in `webhook-signature`, so a receiver holding either the old
or the new secret verifies the message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    """Signs message bodies with every configured `whsec_` secret."""

    def __init__(self, secrets: Iterable[str], *, clock: Callable[[], datetime] | None = None) -> None:
        self._webhooks = [Webhook(secret) for secret in secrets]
        if not self._webhooks:
            raise ValueError("at least one whsec_ secret is needed to sign")
        self._clock = clock or (lambda: datetime.now(UTC))

    def headers(self, message_id: str, body: str) -> dict[str, str]:
        """The three Standard Webhooks headers for one attempt to send `body`."""
        now = self._clock()
        signatures = " ".join(webhook.sign(message_id, now, body) for webhook in self._webhooks)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
