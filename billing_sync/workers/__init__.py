"""Long-running loops (the billing dispatcher); each stops cleanly on SIGTERM or SIGINT."""
