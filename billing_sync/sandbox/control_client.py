"""A client for the sandbox's control API (contract §10), over one keep-alive connection.

Used by `billing-sync run`'s demo and by the tests; it speaks only `/sandbox/*`.
"""

from __future__ import annotations

from typing import Any

import httpx


class SandboxControl:
    """Place calls, press keys, hang up, set faults and read the ground truth of a running sandbox."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/sandbox", timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    def place_call(self) -> str:
        """A connected inbound call; its conversation id."""
        return self.request("POST", "/conversations", json={}).json()["id"]

    def disconnect(self, conversation_id: str) -> None:
        self.request("POST", f"/conversations/{conversation_id}/disconnect")

    def press(self, conversation_id: str, digit: str) -> None:
        self.request("POST", f"/conversations/{conversation_id}/dtmf", json={"digit": digit})

    def speak(self, conversation_id: str, text: str) -> None:
        self.request("POST", f"/conversations/{conversation_id}/speech", json={"text": text})

    def faults(self, **faults: Any) -> dict:
        return self.request("PUT", "/faults", json=faults).json()

    def truth(self) -> list[dict]:
        return self.request("GET", "/truth").json()["playbacks"]
