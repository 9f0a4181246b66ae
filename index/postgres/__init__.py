"""The pgvector backend: collections in PostgreSQL, shared by any number of servers."""
