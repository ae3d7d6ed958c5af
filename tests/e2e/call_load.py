"""Load for the fault test: scripted calls played through the service's API and behind its back.

Each script places a call on the sandbox, plays media the way an admin or the org would
(through our API, or straight on the org's API where our service never hears of the
request), ends its playbacks one of several ways and hangs up. Scripts run on a few
threads until told to stop; script n always does the same thing (a seeded choice), so a
run repeats as far as the machine's timing lets it.

An admin retries what the service could not answer (its worker was killed, Genesys was
rate-limiting) with the same Idempotency-Key. When the service cannot say what happened,
the script moves on: the sandbox's truth is what the test checks the bill against.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from billing_sync.genesys.client import GenesysClient

from ..control_fixtures import MEDIA_HOST
from ..genesys.sandbox_helpers import SandboxControl

PLAY = "/api/v1/conversations/{}/playbacks"
LONG_MS = 600_000
ATTEMPTS = 6
# The service answered, but not yet: its Genesys client was rate-limited or got no answer.
NOT_YET = (503, 504)


def media(name: str, ms: int, **query: int) -> str:
    extra = "".join(f"&{key}={value}" for key, value in query.items())
    return f"https://{MEDIA_HOST}/{name}.wav?duration_ms={ms}{extra}"


class Admin:
    """The service's playback API as an admin uses it, over real HTTP through gunicorn."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self._http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=20)

    def close(self) -> None:
        self._http.close()

    def play(self, conversation_id: str, media_url: str, *, max_duration_s: int = 3600) -> str | None:
        """The playback id, or None when the service could not tell (the sandbox knows)."""
        body = {"media_url": media_url, "max_duration_s": max_duration_s}
        response = self._post(PLAY.format(conversation_id), body, idempotency_key=str(uuid.uuid4()))
        if response is None:
            return None
        assert response.status_code == 201, f"play answered {response.status_code}: {response.text}"
        return response.json()["playback_id"]

    def stop(self, conversation_id: str) -> None:
        response = self._post(PLAY.format(conversation_id) + "/stop", None)
        # 404: nothing playing any more (it ended, or an earlier try already stopped it).
        assert response is None or response.status_code in (200, 404), \
            f"stop answered {response.status_code}: {response.text}"

    def _post(self, path: str, body: dict | None, *, idempotency_key: str | None = None) -> httpx.Response | None:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        retried = False
        for _ in range(ATTEMPTS):
            try:
                response = self._http.post(path, json=body, headers=headers)
            except httpx.TransportError:
                retried = True  # the worker died under the request: ask again
                continue
            if response.status_code in NOT_YET:
                retried = True
                time.sleep(0.2)
                continue
            if retried and response.status_code == 409:
                return None  # the dead worker's try still holds the key: the outcome is unknown
            return response
        return None


class CallScripts:
    """Runs script 0, 1, 2, … on `threads` threads until `stop()`; `finished` counts the scripts done."""

    KINDS = ("complete", "stop", "replace", "hang_up", "behind", "cap", "fail", "complete", "behind", "stop")

    def __init__(self, admin: Admin, calls: SandboxControl, genesys: GenesysClient, *, seed: int,
                 threads: int = 4) -> None:
        self._admin, self._calls, self._genesys, self._seed = admin, calls, genesys, seed
        self._threads = threads
        self._next = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="call-script")
        self._loops: list[Future] = []
        self.finished = 0

    def start(self) -> None:
        self._loops = [self._pool.submit(self._loop) for _ in range(self._threads)]

    def stop(self, timeout_s: float = 60) -> None:
        """Stop starting scripts; wait for those running (raises what any of them raised)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for loop in self._loops:
            loop.result(timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown()

    def check(self) -> None:
        """Raise now what a script raised, if one failed."""
        for loop in self._loops:
            if loop.done():
                loop.result()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                n, self._next = self._next, self._next + 1
            self.run(n)
            with self._lock:
                self.finished += 1

    def run(self, n: int) -> None:
        """Script n: a call, its playbacks ended one way or another, then the hang-up."""
        rng = random.Random(self._seed * 10_000 + n)
        kind = self.KINDS[n % len(self.KINDS)]
        conversation_id = self._calls.place_call()
        short_ms = rng.randrange(1_000, 3_000)
        try:
            if kind == "complete":
                self._admin.play(conversation_id, media(f"c{n}", short_ms))
                time.sleep(short_ms / 1000 + 0.3)
            elif kind == "stop":
                self._admin.play(conversation_id, media(f"s{n}", LONG_MS))
                time.sleep(rng.uniform(0.5, 1.5))
                self._admin.stop(conversation_id)
            elif kind == "replace":  # a new play stops the running one
                self._admin.play(conversation_id, media(f"r{n}", LONG_MS))
                time.sleep(rng.uniform(0.5, 1.0))
                self._admin.play(conversation_id, media(f"n{n}", short_ms))
                time.sleep(short_ms / 1000 + 0.3)
            elif kind == "hang_up":  # the caller hangs up mid-playback
                self._admin.play(conversation_id, media(f"h{n}", LONG_MS))
                time.sleep(rng.uniform(0.5, 1.5))
            elif kind == "behind":  # played on the org directly: the service hears of it by webhook only
                self._genesys.start_playback(conversation_id, media(f"b{n}", short_ms))
                time.sleep(short_ms / 1000 + 0.3)
            elif kind == "cap":  # maxDuration ends it: completed at the cap
                self._admin.play(conversation_id, media(f"m{n}", LONG_MS), max_duration_s=2)
                time.sleep(2.3)
            elif kind == "fail":  # the fetch fails; then decoding fails part-way
                self._admin.play(conversation_id, f"https://{MEDIA_HOST}/broken{n}.wav?fail=1")
                self._admin.play(conversation_id, media(f"f{n}", 5_000, fail_after_ms=short_ms // 2))
                time.sleep(short_ms / 2000 + 0.3)
        finally:
            self._calls.disconnect(conversation_id)  # whatever still plays ends `stopped`
