"""Dense matmuls with bfloat16 operands: values, gradients, the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pqrnn_jax import bf16_matmul, models
from pqrnn_jax import model as model_lib
from tests.model_test import _batch, _tiny


def _bf16(x):
  return np.asarray(jnp.asarray(x).astype(jnp.bfloat16).astype(jnp.float32))


# (lhs shape, rhs shape, dimension numbers): nn.Dense's form on a 3-D input,
# and a form with batch dims and a transposed contraction.
CASES = [
  ((3, 5, 7), (7, 4), (((2,), (0,)), ((), ()))),
  ((2, 7, 5), (2, 3, 7), (((1,), (2,)), ((0,), (0,)))),
]


@pytest.mark.parametrize("ls,rs,dn", CASES)
def test_product_and_gradients_round_operands_and_cotangent(ls, rs, dn):
  k1, k2 = jax.random.split(jax.random.key(0))
  lhs, rhs = jax.random.normal(k1, ls), jax.random.normal(k2, rs)

  def loss(dot, a, b):
    return jnp.sum(jnp.sin(dot(a, b, dn)))

  out = bf16_matmul.dot_general(lhs, rhs, dn)
  want = jax.lax.dot_general(_bf16(lhs), _bf16(rhs), dn)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
  assert np.abs(out - jax.lax.dot_general(lhs, rhs, dn)).max() > 1e-4

  # Reference gradient: float32 products of the rounded operands and the
  # rounded cotangent cos(out).
  g = _bf16(jnp.cos(want))
  _, vjp = jax.vjp(
    lambda a, b: jax.lax.dot_general(a, b, dn), _bf16(lhs), _bf16(rhs)
  )
  want_dl, want_dr = vjp(jnp.asarray(g))
  got_dl, got_dr = jax.grad(loss, (1, 2))(bf16_matmul.dot_general, lhs, rhs)
  assert got_dl.dtype == got_dr.dtype == jnp.float32
  np.testing.assert_allclose(got_dl, want_dl, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got_dr, want_dr, rtol=1e-4, atol=1e-4)


def test_model_with_bf16_matmuls_same_params_close_scores_and_export():
  f32, bf16 = _tiny(), _tiny(matmul="bfloat16")
  params = models.init_params(f32, jax.random.key(0))
  shapes = jax.tree.map(jnp.shape, params)
  assert (
    jax.tree.map(jnp.shape, models.init_params(bf16, jax.random.key(0)))
    == shapes
  )
  fps, lengths, inputs = _batch(f32)
  a = model_lib.Seq2Seq(f32).apply({"params": params}, fps, lengths, inputs)
  b = model_lib.Seq2Seq(bf16).apply({"params": params}, fps, lengths, inputs)
  finite = np.isfinite(np.asarray(a))
  np.testing.assert_array_equal(finite, np.isfinite(np.asarray(b)))
  diff = np.abs(np.asarray(a)[finite] - np.asarray(b)[finite])
  assert 0 < diff.max() < 0.1  # Rounded, and only by bfloat16's step.
  assert bf16.for_export().matmul == "float32"


def test_matmul_names_and_auto():
  with pytest.raises(ValueError, match="matmul='int4'"):
    _tiny(matmul="int4")
  assert bf16_matmul.enabled("bfloat16") and not bf16_matmul.enabled("float32")
  # "auto": bfloat16 exactly where this CPU has bfloat16 dots.
  assert bf16_matmul.enabled("auto") == bf16_matmul.cpu_has_bf16_dots()
