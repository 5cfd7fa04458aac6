"""The pointer head every decoder shares: action embedding and action scores.

Dims: B batch, T source tokens, U target steps, D decoder width, M memory
width, V ontology symbols. An action is an ontology symbol (id < V) or a
pointer to a source position (id V + t, see targets.py); scores are over
the V + T actions.

`PointerHead` is meant to be bound with `nn.share_scope` into the decoder
that owns it, so its parameters sit at the top of the model's tree
(`symbols`, `copy_in`, `symbol_out`, `pointer_q`, `pointer_k`) whichever
model uses it.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from pqrnn_jax import targets as targets_lib


def masked_scores(sym_BxUxV, ptr_BxUxT, mask_BxT):
  """[B, U, V + T] action scores: PAD and pointers past the length (or,
  with a [B, U, T] mask, outside the step's packed segment) -inf."""
  sym = sym_BxUxV.at[..., targets_lib.PAD_ID].set(-jnp.inf)
  mask = mask_BxT[:, None, :] if mask_BxT.ndim == 2 else mask_BxT
  ptr = jnp.where(mask, ptr_BxUxT, -jnp.inf)
  return jnp.concatenate([sym, ptr], axis=-1)


def lookup(embed: nn.Embed, ids, one_hot: bool = False):
  """Rows of an embedding table for integer `ids` (any shape). With
  `one_hot`, a one-hot matmul (the same rows): the exported graph's
  FULLY_CONNECTED gets int8 weights in a dynamic-range file, where the
  converter leaves a GATHER's table in float (~200 KB more)."""
  table = embed.embedding
  if embed.dtype is not None:
    table = table.astype(embed.dtype)
  if not one_hot:
    # mode="clip" (ids are in range): one GATHER in a .tflite, where
    # nn.Embed's default bounds checks and fill add 9 ops per lookup.
    return jnp.take(table, ids, axis=0, mode="clip")
  return jax.nn.one_hot(ids, table.shape[0], dtype=table.dtype) @ table


class PointerHead(nn.Module):
  """Symbol embedding and copy-in for decoder inputs; symbol and pointer
  scores for decoder outputs.

  Attributes:
    vocab_size: V, ontology symbols.
    width: D, the decoder width.
    dense: Dense constructor (float or AQT int8).
    einsum: constructor of the pointer product (AQT int8), or None for
      jnp.einsum.
    embed_dtype: compute dtype of the symbol embedding (None: float32).
    one_hot: embed symbols by a one-hot matmul (`lookup`).
  """

  vocab_size: int
  width: int
  dense: Callable
  einsum: Callable | None = None
  embed_dtype: jnp.dtype | None = None
  one_hot: bool = False

  def setup(self):
    self.symbol_embed = nn.Embed(
      self.vocab_size, self.width, dtype=self.embed_dtype, name="symbols"
    )
    self.copy_in = self.dense(self.width, name="copy_in")
    self.symbol_out = self.dense(self.vocab_size, name="symbol_out")
    self.pointer_q = self.dense(self.width, use_bias=False, name="pointer_q")
    self.pointer_k = self.dense(self.width, use_bias=False, name="pointer_k")
    self.pointer_einsum = (
      self.einsum(name="pointer_einsum") if self.einsum else jnp.einsum
    )

  def embed(self, actions_BxU, memory_BxTxM):
    """Decoder inputs [B, U, D]: a symbol's embedding, or for a pointer the
    encoder state at the pointed position through `copy_in`."""
    is_ptr = actions_BxU >= self.vocab_size
    ids = jnp.where(is_ptr, 0, actions_BxU)
    sym = lookup(self.symbol_embed, ids, self.one_hot).astype(
      self.embed_dtype or jnp.float32
    )
    pos = jnp.clip(actions_BxU - self.vocab_size, 0, memory_BxTxM.shape[1] - 1)
    # In range by the clip: no bounds checks (11 ops fewer in a .tflite).
    copied = jnp.take_along_axis(
      memory_BxTxM, pos[..., None], axis=1, mode="promise_in_bounds"
    )
    copied = self.copy_in(copied).astype(sym.dtype)
    return jnp.where(is_ptr[..., None], copied, sym)

  def keys(self, memory_BxTxM):
    """Pointer keys [B, T, D], computed once per source."""
    return self.pointer_k(memory_BxTxM)

  def raw_scores(self, h_BxUxD, pointer_keys_BxTxD):
    """Unmasked float32 scores: symbols [B, U, V], pointers [B, U, T]."""
    sym = self.symbol_out(h_BxUxD).astype(jnp.float32)
    q = self.pointer_q(h_BxUxD).astype(jnp.float32)
    ptr = self.pointer_einsum(
      "bud,btd->but", q, pointer_keys_BxTxD.astype(q.dtype)
    )
    return sym, ptr / jnp.sqrt(jnp.float32(q.shape[-1]))

  def scores(self, h_BxUxD, pointer_keys_BxTxD, mask_BxT):
    """[B, U, V + T] float32 scores; PAD and padded positions are -inf."""
    sym, ptr = self.raw_scores(h_BxUxD, pointer_keys_BxTxD)
    return masked_scores(sym, ptr, mask_BxT)
