"""Merged-attention (MAtt) decoder with pointer outputs.

Dims: B batch, T source length, U target length, D model width, M memory
width (2H), N heads, V ontology size.

MAtt layer (Zhang, Titov & Sennrich 2019), as in ARCHITECTURE.md section 3:
  a_self  = cumavg_{j<=t}(y_j W_v)      average attention: O(1) state per step
  a_cross = MultiHead(y_t W_q, M W_k, M W_v')
  y'  = LN(y_t + Dropout((a_self + a_cross) W_o))
  out = LN(y' + Dropout(FFN(y')))
The incremental cache per layer is the running sum of y_j W_v plus the
encoder keys and values, computed once: its size does not grow with steps.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from pqrnn_jax import dropout as dropout_lib

# JAX name scope of computations that int8 files keep in float
# (tflite_convert.py).
FLOAT_SCOPE = "keep_float"


def masked_softmax(logits, mask):
  """Softmax over the last axis where `mask` (broadcastable) is true.

  Masked logits sit 30 below the row's smallest: weight < 1e-13, so the
  float result is that of a -inf mask, yet the value stays in the row's
  range, which full-int8 TFLite quantizes per tensor (a finfo.min mask
  sets that range to [-3e38, max] and flattens the attention).
  """
  floor = jnp.min(logits, axis=-1, keepdims=True) - 30.0
  floor = jax.lax.stop_gradient(floor)
  return jax.nn.softmax(jnp.where(mask, logits, floor), axis=-1)


def cross_attention(q_BxUxD, k_BxNxTxK, v_BxNxKxT, mask_BxT, einsum=jnp.einsum):
  """Scaled multi-head attention of queries over the encoder memory;
  mask [B, T], or [B, U, T] per query (packed rows)."""
  b, u, _ = q_BxUxD.shape
  n, dk = k_BxNxTxK.shape[1], k_BxNxTxK.shape[-1]
  q = q_BxUxD.reshape(b, u, n, dk).astype(jnp.float32)
  logits_BxNxUxT = einsum("bunk,bntk->bnut", q, k_BxNxTxK) / jnp.sqrt(
    jnp.float32(dk)
  )
  mask = mask_BxT[:, None, None, :] if mask_BxT.ndim == 2 else mask_BxT[:, None]
  w = masked_softmax(logits_BxNxUxT, mask)
  out = einsum("bnut,bnkt->bunk", w, v_BxNxKxT.astype(jnp.float32))
  return out.reshape(b, u, n * dk)


def cumulative_mean(vals_BxUxD, positions_BxU=None):
  """Mean of vals over steps 0..t of each sequence: [B, U, D]."""
  cum = jnp.cumsum(vals_BxUxD, axis=1)
  u = vals_BxUxD.shape[1]
  if positions_BxU is None:
    return cum / jnp.arange(1, u + 1, dtype=jnp.float32)[None, :, None]
  # Subtract the sum before the segment's first step.
  start = (jnp.arange(u)[None] - positions_BxU)[..., None]
  before = jnp.take_along_axis(cum - vals_BxUxD, start, axis=1)
  return (cum - before) / (positions_BxU + 1.0)[..., None]


class MAttLayer(nn.Module):
  """One merged-attention layer; whole-sequence or one-step.

  Attributes:
    width: D.
    heads: N.
    ffn: FFN hidden width.
    dropout: rate on the two residual branches.
    dense: Dense constructor (float or quantized).
    einsum: einsum module constructor (AQT int8) or None for jnp.einsum.
  """

  width: int
  heads: int
  ffn: int
  dropout: float = 0.0
  dense: type = nn.Dense
  einsum: Any = None

  def setup(self):
    self.w_v = self.dense(self.width, use_bias=False, name="self_v")
    self.w_q = self.dense(self.width, use_bias=False, name="cross_q")
    self.w_kv = self.dense(2 * self.width, use_bias=False, name="cross_kv")
    self.w_o = self.dense(self.width, name="out")
    self.ffn_in = self.dense(self.ffn, name="ffn_in")
    self.ffn_out = self.dense(self.width, name="ffn_out")
    self.ln1 = nn.LayerNorm(name="ln1")
    self.ln2 = nn.LayerNorm(name="ln2")
    self.drop = dropout_lib.Dropout(self.dropout)
    self.attend = self.einsum(name="attend") if self.einsum else jnp.einsum

  def memory_kv(self, memory_BxTxM):
    """Encoder keys [B, N, T, D/N] and values [B, N, D/N, T], computed
    once, laid out as the step's two matmuls read them: TFLite's
    BATCH_MATMUL contracts its right operand on the last axis, and any
    other layout is transposed again on every decode step."""
    b, t, _ = memory_BxTxM.shape
    kv = self.w_kv(memory_BxTxM).reshape(b, t, 2, self.heads, -1)
    return kv[:, :, 0].transpose(0, 2, 1, 3), kv[:, :, 1].transpose(0, 2, 3, 1)

  def _merge(self, y, a_self, kv, mask_BxT, deterministic):
    a_cross = cross_attention(self.w_q(y), *kv, mask_BxT, self.attend)
    a = self.w_o((a_self.astype(jnp.float32) + a_cross).astype(y.dtype))
    y = self._norm(self.ln1, y + self.drop(a, deterministic=deterministic))
    f = self.ffn_out(nn.relu(self.ffn_in(y)))
    return self._norm(self.ln2, y + self.drop(f, deterministic=deterministic))

  def _norm(self, ln, x):
    # int8 files keep the norms in float: in int8 their squares share one
    # per-tensor scale, which a few large residual channels (up to 130 in
    # the six-language model) stretch until typical squares round to 0.
    with jax.named_scope(FLOAT_SCOPE):
      return ln(x)

  def __call__(
    self, y_BxUxD, kv, mask_BxT, deterministic=True, positions_BxU=None
  ):
    """Teacher forcing over all U steps at once (causal by cumulative mean).
    positions_BxU: each step's position in its packed segment (the mean
    restarts where it is 0), or None: one sequence per row."""
    vals = self.w_v(y_BxUxD).astype(jnp.float32)
    return self._merge(
      y_BxUxD, cumulative_mean(vals, positions_BxU), kv, mask_BxT, deterministic
    )

  def step(self, y_BxD, running_sum_BxD, t, kv, mask_BxT):
    """One decoding step t (0-based); returns (output, new running sum)."""
    out, s = self.step_rows(
      y_BxD[:, None], running_sum_BxD[:, None], t, kv, mask_BxT
    )
    return out[:, 0], s[:, 0]

  def step_rows(self, y_BxKxD, running_sum_BxKxD, t, kv, mask_BxT):
    """`step` for K hypotheses per source row, each with its own running
    sum, all reading the row's one encoder cache `kv` (K queries of the
    cross-attention): [B, K, D] in and out."""
    v = self.w_v(y_BxKxD).astype(jnp.float32)
    # A sum's range grows with t: one int8 scale cannot fit every step
    # (early steps lose most), so int8 files keep this scope in float.
    with jax.named_scope(FLOAT_SCOPE):
      running = running_sum_BxKxD + v
      a_self = running / (t + 1.0)
    return self._merge(y_BxKxD, a_self, kv, mask_BxT, True), running
