"""A stream worker running in a thread against the sandbox, stopped (and checked stopped) after the test."""

from __future__ import annotations

import asyncio
import threading

import pytest

from billing_sync.genesys.client import GenesysClient
from billing_sync.playback.control import PlaybackControl
from billing_sync.playback.media import MediaPolicy
from billing_sync.playback.switching import Switcher
from billing_sync.workers.stream import KEEP_ALIVE_S, Shard, StreamWorker

from ..control_fixtures import HEARTBEAT_S


class WorkerThread:
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="stream-worker", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run())
        except BaseException as error:  # surfaced by stop()
            self.error = error

    def stop(self) -> None:
        self.worker.stop()
        # Stopping finishes what is in flight: a Genesys call can take its 10 s timeout (and a
        # retry) before the worker may exit, so the bound here is generous, not a speed check.
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_worker(control_app, control_settings):
    """start_worker(shard=Shard(), **client_options) → a running StreamWorker sharing the app's database."""
    running: list[tuple[WorkerThread, GenesysClient]] = []

    def start(shard: Shard = Shard(), keep_alive_s: float = KEEP_ALIVE_S, **client_options) -> StreamWorker:
        db = control_app.extensions["billing_sync"].db
        genesys = GenesysClient.from_settings(control_settings, **client_options)
        control = PlaybackControl(db, lambda: genesys, MediaPolicy.from_settings(control_settings))
        worker = StreamWorker(db, genesys, Switcher(db, control), shard=shard, refresh_s=0.1, linger_s=0.3,
                              keep_alive_s=keep_alive_s,
                              stream_options={"heartbeat_interval_s": HEARTBEAT_S,
                                              "reconnect_backoff_base_s": 0.05, "reconnect_backoff_cap_s": 0.5})
        thread = WorkerThread(worker)
        thread.thread.start()
        running.append((thread, genesys))
        return worker

    yield start
    for thread, genesys in running:
        try:
            thread.stop()
        finally:
            genesys.close()
