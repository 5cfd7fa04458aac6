"""Dropout masks from 16 bits per decision: rates, independence, contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pqrnn_jax import dropout


@pytest.mark.parametrize("p", [0.0625, 0.2, 0.5, 0.9])
def test_bernoulli_rate(p):
  n = 200_001  # Odd: the last word's second half is cut off.
  m = np.asarray(dropout.bernoulli(jax.random.key(0), p, (n,)))
  assert m.shape == (n,) and m.dtype == bool
  # 5 standard errors.
  assert abs(m.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_bernoulli_edges_and_shape():
  key = jax.random.key(1)
  assert not np.asarray(dropout.bernoulli(key, 0.0, (7, 3))).any()
  assert np.asarray(dropout.bernoulli(key, 1.0, (7, 3))).all()
  assert dropout.bernoulli(key, 0.3, (2, 5, 3)).shape == (2, 5, 3)
  with pytest.raises(ValueError, match="outside"):
    dropout.bernoulli(key, 1.5, (3,))


def test_bernoulli_halves_are_independent():
  # The two decisions of one 32-bit word are its low and high halves: they
  # must not be correlated (a shared half would give P(both) = p, not p^2).
  n, p = 100_000, 0.3
  m = np.asarray(dropout.bernoulli(jax.random.key(2), p, (n,)))
  lo, hi = m[0::2], m[1::2]
  both = (lo & hi).mean()
  assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / lo.size)
  # Different keys give different masks.
  other = np.asarray(dropout.bernoulli(jax.random.key(3), p, (n,)))
  assert (m != other).mean() > 0.3


def test_dropout_module_contract():
  x = jnp.ones((64, 256))
  layer = dropout.Dropout(0.2)
  assert layer.apply({}, x, deterministic=True) is x
  y = layer.apply(
    {}, x, deterministic=False, rngs={"dropout": jax.random.key(4)}
  )
  y = np.asarray(y)
  kept = y != 0
  # Inverted dropout: kept units are scaled by 1 / 0.8; the mean is kept.
  np.testing.assert_allclose(y[kept], 1.25, rtol=1e-6)
  assert abs(kept.mean() - 0.8) < 0.01
  assert abs(y.mean() - 1.0) < 0.02
  zeros = dropout.Dropout(1.0).apply({}, x, deterministic=False)
  assert not np.asarray(zeros).any()
