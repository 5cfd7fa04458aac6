"""Data: TOP-style file readers, tokenizer, synthetic data, TFDS builder."""
