"""pqrnn_jax: tiny on-device seq2seq (pQRNN-MAtt) in JAX/Flax."""

__version__ = "0.1.0"
