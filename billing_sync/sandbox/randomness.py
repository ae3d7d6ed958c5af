"""Seeded randomness: one independent, lock-guarded stream per purpose so a run repeats."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class SeededStream:
    """A thread-safe `random.Random` stream derived from the sandbox seed and a purpose."""

    def __init__(self, seed: int, purpose: str) -> None:
        self._random = random.Random(f"{seed}:{purpose}")
        self._lock = threading.Lock()

    def uuid(self) -> str:
        """A version-4 UUID drawn from this stream."""
        with self._lock:
            return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def token(self, nbytes: int = 32) -> str:
        """An opaque URL-safe token drawn from this stream."""
        with self._lock:
            return self._random.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def chance(self, probability: float) -> bool:
        """True with the given probability."""
        if probability <= 0:
            return False
        with self._lock:
            return self._random.random() < probability

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._random.uniform(low, high)

    def shuffled(self, items: Sequence[T]) -> list[T]:
        with self._lock:
            result = list(items)
            self._random.shuffle(result)
            return result


class Randomness:
    """Every random choice the sandbox makes, one stream per purpose."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.ids = SeededStream(seed, "ids")
        self.tokens = SeededStream(seed, "tokens")
        self.webhooks = SeededStream(seed, "webhooks")
        self.context = SeededStream(seed, "context")
