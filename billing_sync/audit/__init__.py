"""The hash-chained audit log."""

from .log import GENESIS_HASH, append, entry_hash
from .verify import ChainReport, verify_chain

__all__ = ["GENESIS_HASH", "ChainReport", "append", "entry_hash", "verify_chain"]
