"""Dropout and Bernoulli masks from 16 random bits per decision.

`jax.random.bernoulli` spends one 32-bit threefry draw per element, and on
CPU those draws were about a tenth of a training step (zoneout, word
dropout and seven dropout sites per step). Here one 32-bit draw makes two
decisions, each from 16 bits: half the threefry work. The probability is
rounded to a multiple of 2^-16 (0.2 -> 13107 / 65536, 1.5e-5 off), far below
anything a dropout rate is tuned to.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_BITS = 16


def bernoulli(key, p: float, shape) -> jax.Array:
  """bool array of `shape`, each True with probability p (a Python float;
  rounded to a multiple of 2^-16)."""
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"probability {p} is outside [0, 1]")
  shape = tuple(shape)
  n = math.prod(shape)
  words = jax.random.bits(key, (-(-n // 2),), jnp.uint32)
  halves = jnp.stack([words & 0xFFFF, words >> _BITS], axis=-1)
  u = halves.reshape(-1)[:n].reshape(shape)
  # p = 1 needs threshold 2^16, which a uint32 compare holds.
  return u < jnp.uint32(round(p * (1 << _BITS)))


class Dropout(nn.Module):
  """flax.linen.Dropout's contract (inverted dropout from the "dropout"
  rng, identity when deterministic), with masks from `bernoulli`."""

  rate: float

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if self.rate == 0.0 or deterministic:
      return x
    if self.rate == 1.0:
      return jnp.zeros_like(x)
    keep_prob = 1.0 - self.rate
    keep = bernoulli(self.make_rng("dropout"), keep_prob, x.shape)
    return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))
