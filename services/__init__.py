"""pq services: the producer, consumer and manager processes around pqcore."""

__version__ = "0.1.0"
