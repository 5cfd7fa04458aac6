"""Input and output specs of the exported `encode` and `decode_step`
signatures, shared by every model: [(name, shape, dtype)] per side.

Dims: T source length, M memory width, D decoder width, V ontology symbols.
"""

from pqrnn_jax import projection


def encode_signature(config, memory_width: int, cache, t: int) -> dict:
  """The `encode` signature every model shares: fingerprints and length in,
  memory, pointer keys and `cache` [(name, shape, dtype)] out (batch 1,
  source length t)."""
  fps = projection.input_shape(config.token_features, t, 1)
  return {
    "inputs": [("fingerprints", fps, "int32"), ("length", (1,), "int32")],
    "outputs": [
      ("memory", (1, t, memory_width), "float32"),
      ("pointer_keys", (1, t, config.bottleneck), "float32"),
    ]
    + list(cache),
  }


def step_signature(config, encoded, state, t: int) -> dict:
  """The `decode_step` signature: previous action, step, length, the
  `encode` outputs and the decoder `state` in; unmasked symbol and pointer
  scores and the next `state` out (batch 1)."""
  ids = [("prev_action", (1,), "int32"), ("step", (1,), "int32")]
  return {
    "inputs": ids + [("length", (1,), "int32")] + encoded + list(state),
    "outputs": [
      ("symbol_scores", (1, config.vocab_size), "float32"),
      ("pointer_scores", (1, t), "float32"),
    ]
    + list(state),
  }


def export_signatures(config, memory_width: int, cache, state, t) -> dict:
  """{"encode"|"decode_step": {"inputs"|"outputs": [(name, shape, dtype)]}}
  at source length t; the graphs themselves take T from their inputs."""
  enc = encode_signature(config, memory_width, cache, t)
  return {
    "encode": enc,
    "decode_step": step_signature(config, enc["outputs"], state, t),
  }
