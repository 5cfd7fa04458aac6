"""Data: readers for TOP-style files, tokenizer, synthetic data, TFDS builder."""
