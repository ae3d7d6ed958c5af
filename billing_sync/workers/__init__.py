"""Long-running loops: the stream listener (and, later, the billing dispatcher); shutdown on SIGTERM."""
