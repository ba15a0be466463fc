"""One driver per database (see pqcore.driver): SQLite and PostgreSQL."""
