"""Media rules: which URLs play, how long they last and which ones fail.

- Supported: http(s) URLs whose path ends in .wav .mp3 .ogg .opus .g711 or .g729.
- Length: the query parameter `duration_ms=N` when present, otherwise
  5,000 + (first 8 bytes of SHA-256(url) mod 55,001) ms, i.e. 5 to 60 seconds.
- Failure: `fail=1` (or `fail=true`) in the query makes the fetch fail: the playback goes
  `started` then `failed` with duration 0. `fail_after_ms=N` makes decoding fail after N ms
  of playing: `failed` with duration N (unless the media or maxDuration ends first).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SUPPORTED_EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".g711", ".g729")
MIN_LENGTH_MS = 5_000
MAX_LENGTH_MS = 60_000


class MediaError(ValueError):
    """A media URL the platform cannot play."""


@dataclass(frozen=True)
class Media:
    """What the sandbox knows about a media URL before playing it."""

    url: str
    length_ms: int
    fetch_fails: bool
    fail_after_ms: int | None


def media_length_ms(url: str) -> int:
    """The deterministic length of the media at `url`, in milliseconds."""
    query = parse_qs(urlsplit(url).query)
    if "duration_ms" in query:
        return _non_negative(query["duration_ms"][-1], "duration_ms")
    digest = hashlib.sha256(url.encode()).digest()
    span = MAX_LENGTH_MS - MIN_LENGTH_MS + 1
    return MIN_LENGTH_MS + int.from_bytes(digest[:8], "big") % span


def describe_media(url: str) -> Media:
    """Validate `url` and describe how it will play; raises MediaError when unsupported."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MediaError("must be an http(s) URL")
    if not parts.path.lower().endswith(SUPPORTED_EXTENSIONS):
        raise MediaError("unsupported media; supported: " + " ".join(SUPPORTED_EXTENSIONS))
    query = parse_qs(parts.query)
    fetch_fails = query.get("fail", [""])[-1].lower() in ("1", "true")
    fail_after = query.get("fail_after_ms")
    return Media(
        url=url,
        length_ms=media_length_ms(url),
        fetch_fails=fetch_fails,
        fail_after_ms=_non_negative(fail_after[-1], "fail_after_ms") if fail_after else None,
    )


def _non_negative(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise MediaError(f"{name} must be an integer") from None
    if value < 0:
        raise MediaError(f"{name} must not be negative")
    return value
