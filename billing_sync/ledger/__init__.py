"""The ledger: ingesting playback events exactly once and the state they add up to."""
