"""The hash-chained audit log."""

from .log import GENESIS_HASH, NewEntry, append, append_many, entry_hash
from .verify import ChainReport, verify_chain

__all__ = ["GENESIS_HASH", "ChainReport", "NewEntry", "append", "append_many", "entry_hash", "verify_chain"]
