"""A small order-import application on pq tasks: see README.md."""
