"""The hash-chained audit log."""

from .log import (
    GENESIS_HASH, NewEntry, RenderedEntry, append, append_chained, append_many, append_rendered, entry_hash, rendered,
)
from .verify import ChainReport, verify_chain

__all__ = ["GENESIS_HASH", "ChainReport", "NewEntry", "RenderedEntry", "append", "append_chained", "append_many",
           "append_rendered", "entry_hash", "rendered", "verify_chain"]
