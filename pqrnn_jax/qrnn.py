"""Quasi-recurrent layers (Bradbury et al. 2017): conv gates + fo-pooling.

Dims: B batch, T time, D layer input width, H hidden width per direction,
k convolution width.

The gates are parameterised (one Dense over k stacked shifted inputs, which
is a width-k causal convolution); the recurrence has no parameters and is a
linear scan s_t = a_t * s_{t-1} + b_t. It has one signature and three
implementations, picked from `POOLING`:
  scan:        lax.scan, the reference semantics (a WHILE loop in TFLite);
  associative: lax.associative_scan, O(log T) depth for accelerators;
  unrolled:    a Python loop over the fixed T (no WHILE op, which the
               full-int8 TFLite calibrator crashes on): 4 ops per step;
  doubling:    recursive doubling, ceil(log2 T) levels of shifted
               multiply-adds: no WHILE and O(log T) ops, what the TFLite
               export uses.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from pqrnn_jax import dropout as dropout_lib


def _scan_pool(a_BxTxH, b_BxTxH, reverse: bool = False):
  """s_t = a_t s_{t-1} + b_t with s_{-1} = 0, by lax.scan; returns s."""

  def step(s, ab):
    a, b = ab
    s = a * s + b
    return s, s

  s0 = jnp.zeros_like(a_BxTxH[:, 0])
  xs = (jnp.swapaxes(a_BxTxH, 0, 1), jnp.swapaxes(b_BxTxH, 0, 1))
  _, s_TxBxH = jax.lax.scan(step, s0, xs, reverse=reverse)
  return jnp.swapaxes(s_TxBxH, 0, 1)


def _associative_pool(a_BxTxH, b_BxTxH, reverse: bool = False):
  """Same recurrence by a parallel prefix over (a, b) pairs."""

  def combine(left, right):
    # Applying (a1, b1) then (a2, b2): s -> a2 (a1 s + b1) + b2.
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2

  _, s = jax.lax.associative_scan(
    combine, (a_BxTxH, b_BxTxH), reverse=reverse, axis=1
  )
  return s


def _unrolled_pool(a_BxTxH, b_BxTxH, reverse: bool = False):
  """Same recurrence as straight-line code over the static T (no WHILE)."""
  t_max = a_BxTxH.shape[1]
  order = range(t_max - 1, -1, -1) if reverse else range(t_max)
  s = jnp.zeros_like(a_BxTxH[:, 0])
  out = [None] * t_max
  for t in order:
    s = a_BxTxH[:, t] * s + b_BxTxH[:, t]
    out[t] = s
  return jnp.stack(out, axis=1)


def _shift_in(x_BxTxH, d: int, fill: float):
  """x moved d steps later along T, the first d steps set to `fill`: a
  slice and a concat, both int8 builtins (a PAD would be STABLEHLO_PAD)."""
  head = jnp.full_like(x_BxTxH[:, :d], fill)
  return jnp.concatenate([head, x_BxTxH[:, :-d]], axis=1)


def _doubling_pool(a_BxTxH, b_BxTxH, reverse: bool = False):
  """Same recurrence by recursive doubling (Hillis-Steele): after level d,
  (A_t, B_t) compose the steps t-2d+1..t, so ceil(log2 T) levels of
  shifted multiply-adds, straight-line code with no WHILE. The backward
  direction flips time around a forward pass (REVERSE_V2)."""
  if reverse:
    flip = lambda x: jnp.flip(x, axis=1)
    return flip(_doubling_pool(flip(a_BxTxH), flip(b_BxTxH)))
  t_max, d = a_BxTxH.shape[1], 1
  a, b = a_BxTxH, b_BxTxH
  while d < t_max:
    b = a * _shift_in(b, d, 0.0) + b
    if 2 * d < t_max:  # The last level needs no A.
      a = a * _shift_in(a, d, 1.0)
    d *= 2
  return b


POOLING = {
  "scan": _scan_pool,
  "associative": _associative_pool,
  "unrolled": _unrolled_pool,
  "doubling": _doubling_pool,
}


def _neighbour(segments_BxT, d: int):
  """The segment id d steps earlier (d < 0: later), -1 past the ends."""
  t_max = segments_BxT.shape[1]
  pad = [(0, 0), (d, 0) if d > 0 else (0, -d)]
  padded = jnp.pad(segments_BxT, pad, constant_values=-1)
  start = 0 if d > 0 else -d
  return padded[:, start : start + t_max]


def fo_pool(z, f, mask_BxT, reverse=False, impl="scan", segments_BxT=None):
  """fo-pooling c_t = f_t c_{t-1} + (1 - f_t) z_t over valid steps.

  Padded steps get multiplier 1 and input 0, so the state carries through
  them unchanged and a padded batch equals per-example runs.

  Args:
    z, f: [B, T, H] candidate and forget gate.
    mask_BxT: [B, T] bool, True on real tokens.
    reverse: run from the end (the backward direction).
    impl: a key of POOLING.
    segments_BxT: packed rows' segment ids (packing.py), or None: the
      state restarts from 0 at each segment's first step.
  Returns:
    c: [B, T, H] cell states.
  """
  m = mask_BxT[..., None]
  if segments_BxT is not None:
    first = segments_BxT != _neighbour(segments_BxT, -1 if reverse else 1)
    f_carry = jnp.where(first[..., None], 0.0, f)
  else:
    f_carry = f
  a = jnp.where(m, f_carry, 1.0)
  b = jnp.where(m, (1.0 - f) * z, 0.0)
  return POOLING[impl](a, b, reverse)


def shift_stack(x_BxTxD, k: int, reverse: bool = False, segments_BxT=None):
  """[B, T, k*D]: x_{t-k+1..t} (or x_{t..t+k-1} if reverse), zero padded;
  with segment ids, zero where a tap reaches into another segment."""
  t_max = x_BxTxD.shape[1]
  pad = [(0, 0), (0, k - 1) if reverse else (k - 1, 0), (0, 0)]
  xp = jnp.pad(x_BxTxD, pad)
  taps = [xp[:, i : i + t_max] for i in range(k)]
  if segments_BxT is not None:
    # Tap i reads step t - (k - 1 - i), or t + i in reverse.
    d = [-i if reverse else k - 1 - i for i in range(k)]
    taps = [
      x * (_neighbour(segments_BxT, di) == segments_BxT)[..., None] if di else x
      for x, di in zip(taps, d, strict=True)
    ]
  return jnp.concatenate(taps, axis=-1)


class QRNNDirection(nn.Module):
  """One direction of a QRNN layer: gates by a width-k conv, then pooling.

  Attributes:
    hidden: H.
    kernel: k.
    reverse: anti-causal conv and pooling from the end.
    zoneout: probability of keeping the previous state (training only).
    pooling: a key of POOLING.
    dense: Dense constructor (float or quantized), called with features.
  """

  hidden: int
  kernel: int = 3
  reverse: bool = False
  zoneout: float = 0.0
  pooling: str = "scan"
  dense: type = nn.Dense
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, x_BxTxD, mask_BxT, deterministic: bool = True, segments_BxT=None
  ):
    xs = shift_stack(x_BxTxD, self.kernel, self.reverse, segments_BxT)
    gates_BxTx3H = self.dense(3 * self.hidden, name="gates")(xs)
    gates_BxTx3H = gates_BxTx3H.astype(jnp.float32)
    z, f, o = jnp.split(gates_BxTx3H, 3, axis=-1)
    z, f, o = jnp.tanh(z), nn.sigmoid(f), nn.sigmoid(o)
    if self.zoneout > 0 and not deterministic:
      # Bradbury et al.: F = 1 - dropout(1 - F), not rescaled: a zoned-out
      # unit keeps its previous state for that step.
      keep = dropout_lib.bernoulli(
        self.make_rng("dropout"), self.zoneout, f.shape
      )
      f = jnp.where(keep, 1.0, f)
    c = fo_pool(z, f, mask_BxT, self.reverse, self.pooling, segments_BxT)
    return o * c


class BiQRNN(nn.Module):
  """Stack of bidirectional QRNN layers; outputs [B, T, 2H], zero on pads.

  Layer l (from 0) uses zoneout probability zoneout ** (l + 1). With
  `segments_BxT` (packed rows, packing.py) each segment runs as if alone.
  """

  hidden: int
  layers: int
  kernel: int = 3
  zoneout: float = 0.0
  pooling: str = "scan"
  dense: type = nn.Dense
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, x_BxTxD, mask_BxT, deterministic: bool = True, segments_BxT=None
  ):
    m = mask_BxT[..., None].astype(x_BxTxD.dtype)
    x = x_BxTxD * m  # Padded inputs must not leak into the anti-causal conv.
    for layer in range(self.layers):
      p = self.zoneout ** (layer + 1) if self.zoneout > 0 else 0.0
      direction = functools.partial(
        QRNNDirection,
        self.hidden,
        self.kernel,
        zoneout=p,
        pooling=self.pooling,
        dense=self.dense,
        dtype=self.dtype,
      )
      fwd = direction(reverse=False, name=f"l{layer}_fwd")
      bwd = direction(reverse=True, name=f"l{layer}_bwd")
      h = jnp.concatenate(
        [
          fwd(x, mask_BxT, deterministic, segments_BxT),
          bwd(x, mask_BxT, deterministic, segments_BxT),
        ],
        axis=-1,
      )
      x = (h * m).astype(self.dtype)
    return x
