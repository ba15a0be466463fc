"""Example applications built on pq (each has its own README)."""
