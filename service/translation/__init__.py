"""Translation work: masking, packing, memory and the TranslateText pipeline."""
