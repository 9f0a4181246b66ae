"""Cross-lingual retrieval: embedders, FAISS collections, document store."""
