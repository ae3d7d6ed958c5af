"""Admin playback control: media validation, start/stop/switch, idempotency, switching rules."""
