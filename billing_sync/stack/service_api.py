"""billing-sync's own HTTP API as the demo uses it: an admin and a finance caller."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

CONTROL_TRIES = 5


class ServiceError(Exception):
    """The service answered something the demo did not expect; names the call and the answer."""


class ServiceAPI:
    """Calls /api/v1 over one keep-alive connection with an admin key, and a finance key where asked."""

    def __init__(self, api_url: str, *, admin_key: str, finance_key: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=api_url, timeout=timeout_s)
        self._admin = {"Authorization": f"Bearer {admin_key}"}
        self._finance = {"Authorization": f"Bearer {finance_key}"}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, expect: int = 200, finance: bool = False,
              **kwargs: Any) -> httpx.Response:
        headers = {**(self._finance if finance else self._admin), **kwargs.pop("headers", {})}
        response = self._http.request(method, path, headers=headers, **kwargs)
        if response.status_code != expect:
            raise ServiceError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def play(self, conversation_id: str, media_url: str, *, max_duration_s: int = 60) -> str:
        """Start media on a call; the playback id."""
        body = {"media_url": media_url, "max_duration_s": max_duration_s}
        return self._control(f"/api/v1/conversations/{conversation_id}/playbacks", body, expect=201)["playback_id"]

    def stop(self, conversation_id: str) -> None:
        self._control(f"/api/v1/conversations/{conversation_id}/playbacks/stop", None, expect=200)

    def _control(self, path: str, body: dict | None, *, expect: int) -> dict:
        """POST a playback action, again with the same Idempotency-Key while Genesys rate-limits us (503)."""
        headers = {**self._admin, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(1, CONTROL_TRIES + 1):
            response = self._http.post(path, json=body, headers=headers)
            if response.status_code != 503 or attempt == CONTROL_TRIES:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code != expect:
            raise ServiceError(f"POST {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def add_switch_rule(self, *, dtmf: str, media_url: str, conversation_id: str) -> int:
        body = {"dtmf": dtmf, "media_url": media_url, "conversation_id": conversation_id}
        return self._call("POST", "/api/v1/switch-rules", json=body, expect=201).json()["id"]

    def playbacks(self, conversation_id: str) -> list[dict]:
        return self._call("GET", "/api/v1/playbacks", params={"conversation_id": conversation_id}).json()["items"]

    def playback(self, playback_id: str) -> dict | None:
        """The ledger's playback with its events, None while the ledger has not heard of it."""
        response = self._http.get(f"/api/v1/playbacks/{playback_id}", headers=self._admin)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceError(f"GET /api/v1/playbacks/{playback_id}: {response.status_code}")
        return response.json()

    def outbox_pending(self) -> bool:
        """Whether any billing record still waits for delivery."""
        items = self._call("GET", "/api/v1/billing/outbox", params={"status": "pending", "limit": 1},
                           finance=True).json()["items"]
        return bool(items)

    def reconcile(self, since: datetime, until: datetime, *, grace_s: int) -> dict:
        body = {"since": since.isoformat(), "until": until.isoformat(), "grace_s": grace_s}
        return self._call("POST", "/api/v1/reconciliations", json=body, expect=201, finance=True).json()

    def export_csv(self, dataset: str, since: datetime, until: datetime, path: Path) -> None:
        """Stream one dataset's CSV export into `path`."""
        params = {"dataset": dataset, "since": since.isoformat(), "until": until.isoformat()}
        with self._http.stream("GET", "/api/v1/audit/export.csv", params=params, headers=self._finance) as response:
            if response.status_code != 200:
                response.read()
                raise ServiceError(f"GET /api/v1/audit/export.csv: {response.status_code} {response.text[:300]}")
            with path.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
