"""Baseline models that share the pointer head and decoding of pQRNN-MAtt."""
