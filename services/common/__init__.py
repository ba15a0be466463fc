"""What every pq service shares: settings from flags and ``PQ_*`` env, logging,
the metrics endpoint and signal handling."""
