"""Long-running loops: the billing dispatcher and the stream listener; each stops cleanly on SIGTERM or SIGINT."""
