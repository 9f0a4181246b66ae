"""Python client, CLI and batch runner."""
