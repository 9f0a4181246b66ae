"""Fake backends on loopback, speaking the real wire formats."""
