"""The manager: the elected leader rescues, retries and cleans up; every manager
exports the queue's depth to Prometheus."""
