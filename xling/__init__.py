"""xling: multilingual translation and cross-lingual retrieval over gRPC."""

__version__ = "0.1.0"
