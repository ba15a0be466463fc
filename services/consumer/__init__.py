"""The consumer: claims jobs under a lease, runs their handler, reports the outcome."""
