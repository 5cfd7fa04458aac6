"""AQT int8: layers, the int8 model, training from scratch and fine-tuning."""

import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import tiny
from pqrnn_jax import checkpoints, model, models, quant, train_step, training


def test_int8_dense_rounds_forward_and_passes_gradients_straight():
  x = jax.random.normal(jax.random.key(0), (4, 6, 16))
  params = nn.Dense(8).init(jax.random.key(1), x)
  dense = quant.int8_dense()(8)
  # Same parameters as the float layer, so checkpoints move both ways.
  assert jax.tree.structure(dense.init(jax.random.key(1), x)) == (
    jax.tree.structure(params)
  )
  y_f = nn.Dense(8).apply(params, x)
  y_q = dense.apply(params, x)
  err = float(jnp.max(jnp.abs(y_q - y_f)))
  # Per-tensor int8 activations and per-channel weights: each product
  # carries about 1/127 relative error; 16 of them sum up.
  assert 0 < err < 0.05 * float(jnp.max(jnp.abs(y_f)))
  g_f = jax.grad(lambda p: nn.Dense(8).apply(p, x).sum())(params)
  g_q = jax.grad(lambda p: dense.apply(p, x).sum())(params)
  for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_q), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_int8_einsum_is_close_and_has_no_variables():
  class Attend(nn.Module):
    @nn.compact
    def __call__(self, a, b):
      return quant.int8_einsum()("bqd,bkd->bqk", a, b)

  a = jax.random.normal(jax.random.key(0), (2, 5, 8))
  b = jax.random.normal(jax.random.key(1), (2, 7, 8))
  variables = Attend().init(jax.random.key(2), a, b)
  assert not jax.tree.leaves(variables)
  got = Attend().apply(variables, a, b)
  want = jnp.einsum("bqd,bkd->bqk", a, b)
  assert (
    0
    < float(jnp.max(jnp.abs(got - want)))
    < 0.05 * float(jnp.max(jnp.abs(want)))
  )


def _cfgs():
  c = tiny.get_config()
  f = models.from_config(c.model, vocab_size=12).replace(
    dropout=0.0, zoneout=0.0
  )
  return f, f.replace(quant="int8")


def test_int8_model_shares_params_and_trains_from_scratch():
  f_cfg, q_cfg = _cfgs()
  params = models.init_params(q_cfg, jax.random.key(0))
  assert jax.tree.structure(params) == jax.tree.structure(
    models.init_params(f_cfg, jax.random.key(0))
  )
  b, t, u = 3, f_cfg.max_source_len, f_cfg.max_target_len
  fps = jax.random.bits(jax.random.key(1), (b, t), jnp.uint32)
  lengths = jnp.array([t, 5, 2], jnp.int32)
  # Symbols and pointers into the shortest row's 2 tokens.
  targets = jax.random.randint(jax.random.key(2), (b, u), 1, 12 + 2)
  weights = jnp.ones((b, u))

  def loss(p, cfg):
    scores = model.Seq2Seq(cfg).apply(
      {"params": p}, fps, lengths, model.shift_right(targets)
    )
    return train_step.loss_sums(scores, targets, weights, 0.1)["loss"]

  @jax.jit
  def both(p):
    return jax.value_and_grad(loss)(p, q_cfg), loss(p, f_cfg)

  (l_q, g_q), l_f = both(params)
  assert np.isfinite(l_q) and abs(float(l_q - l_f)) < 0.02 * float(l_f)
  # Every parameter learns through the straight-through int8 matmuls.
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(g_q))


def test_float_checkpoint_fine_tunes_as_int8(tmp_path):
  cfg = tiny.get_config()
  cfg.train.num_steps, cfg.eval_every, cfg.checkpoint_every = 2, 100, 100
  cfg.train.devices = 1  # One pmap replica: compiles and runs faster.
  training.train_and_evaluate(cfg, tmp_path / "float")
  shutil.copytree(tmp_path / "float", tmp_path / "int8")
  cfg.model.quant = "int8"
  cfg.train.num_steps = 4
  training.train_and_evaluate(cfg, tmp_path / "int8")
  model_cfg, _, params, _ = checkpoints.load_for_inference(
    tmp_path / "int8", "latest"
  )
  assert model_cfg.quant == "int8"
  _, _, float_params, _ = checkpoints.load_for_inference(tmp_path / "float")
  moved = jax.tree.map(
    lambda a, b: float(jnp.abs(a - b).max()), params, float_params
  )
  assert max(jax.tree.leaves(moved)) > 0  # It resumed and kept training.
