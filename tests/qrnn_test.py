"""QRNN: pooling variants agree, masking, causality, zoneout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pqrnn_jax import qrnn


def _random_gates(seed, b=3, t=9, h=5):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  z = jnp.tanh(jax.random.normal(k1, (b, t, h)))
  f = jax.nn.sigmoid(jax.random.normal(k2, (b, t, h)))
  lengths = jax.random.randint(k3, (b,), 1, t + 1).at[0].set(t)
  mask = jnp.arange(t)[None] < lengths[:, None]
  return z, f, mask


def _loop_reference(z, f, mask, reverse):
  z, f, mask = map(np.asarray, (z, f, mask))
  c = np.zeros(z.shape[::2], np.float64)
  out = np.zeros(z.shape, np.float64)
  steps = range(z.shape[1])
  for t in reversed(steps) if reverse else steps:
    upd = f[:, t] * c + (1 - f[:, t]) * z[:, t]
    c = np.where(mask[:, t, None], upd, c)
    out[:, t] = c
  return out


@pytest.mark.parametrize("impl", sorted(qrnn.POOLING))
@pytest.mark.parametrize("reverse", [False, True])
def test_pooling_variants_match_loop(impl, reverse):
  z, f, mask = _random_gates(0)
  got = jax.jit(qrnn.fo_pool, static_argnums=(3, 4))(z, f, mask, reverse, impl)
  want = _loop_reference(z, f, mask, reverse)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_shift_stack_causal_and_anticausal():
  x = jnp.arange(1.0, 5.0)[None, :, None]  # [1, 4, 1]
  fwd = qrnn.shift_stack(x, 3)[0]
  bwd = qrnn.shift_stack(x, 3, reverse=True)[0]
  np.testing.assert_array_equal(fwd[2], [1, 2, 3])
  np.testing.assert_array_equal(fwd[0], [0, 0, 1])
  np.testing.assert_array_equal(bwd[0], [1, 2, 3])
  np.testing.assert_array_equal(bwd[3], [4, 0, 0])


def _bi(pooling="scan", zoneout=0.0):
  return qrnn.BiQRNN(
    hidden=4, layers=2, kernel=3, zoneout=zoneout, pooling=pooling
  )


def test_padded_batch_equals_per_example():
  x = jax.random.normal(jax.random.key(1), (3, 7, 6))
  lengths = jnp.array([7, 4, 2])
  mask = jnp.arange(7)[None] < lengths[:, None]
  m = _bi()
  params = m.init(jax.random.key(0), x, mask)
  out = m.apply(params, x, mask)
  assert out.shape == (3, 7, 8)
  for i, n in enumerate(lengths.tolist()):
    xi = x[i : i + 1, :n]
    oi = m.apply(params, xi, jnp.ones((1, n), bool))
    np.testing.assert_allclose(out[i, :n], oi[0], atol=1e-5)
    np.testing.assert_array_equal(out[i, n:], 0.0)


def test_variants_agree_inside_the_layer():
  x = jax.random.normal(jax.random.key(2), (2, 6, 5))
  mask = jnp.array([[True] * 6, [True] * 3 + [False] * 3])
  params = _bi().init(jax.random.key(0), x, mask)
  outs = [_bi(p).apply(params, x, mask) for p in sorted(qrnn.POOLING)]
  for o in outs[1:]:
    np.testing.assert_allclose(o, outs[0], atol=1e-5)


def test_causality_by_gradients():
  t, t0 = 8, 4
  x = jax.random.normal(jax.random.key(3), (1, t, 3))
  mask = jnp.ones((1, t), bool)
  d = qrnn.QRNNDirection(hidden=4, kernel=3)
  params = d.init(jax.random.key(0), x, mask)
  for reverse in (False, True):
    d = qrnn.QRNNDirection(hidden=4, kernel=3, reverse=reverse)
    g = jax.grad(lambda x, d=d: d.apply(params, x, mask)[0, t0].sum())(x)
    g = np.abs(np.asarray(g[0])).sum(-1)
    if reverse:
      assert np.all(g[:t0] == 0) and np.all(g[t0:] > 0)
    else:
      assert np.all(g[t0 + 1 :] == 0) and np.all(g[: t0 + 1] > 0)


def test_zoneout_only_in_training():
  x = jax.random.normal(jax.random.key(4), (2, 6, 5))
  mask = jnp.ones((2, 6), bool)
  m = _bi(zoneout=0.5)
  params = m.init(jax.random.key(0), x, mask)
  det = m.apply(params, x, mask)
  np.testing.assert_allclose(det, _bi().apply(params, x, mask))
  rngs = {"dropout": jax.random.key(9)}
  train = m.apply(params, x, mask, deterministic=False, rngs=rngs)
  assert not np.allclose(train, det)
