"""Cross-lingual search: retrieval, fusion, model rerank and summary over xling.index."""
