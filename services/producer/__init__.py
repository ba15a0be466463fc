"""The producer: writes a job file every few seconds and enqueues its path."""
