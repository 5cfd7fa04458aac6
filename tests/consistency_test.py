"""R-Drop: two dropout passes, their mean cross-entropy and symmetric KL."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import consistency, models, train_step, training
from tests import distill_test


def test_symmetric_kl_is_symmetric_zero_on_equal_and_weighted():
  scores = distill_test._scores
  a, b, w = scores(0), scores(1), jnp.ones((2, 3))
  ab = float(consistency.symmetric_kl_sums(a, b, w))
  assert ab > 0.01
  assert ab == pytest.approx(float(consistency.symmetric_kl_sums(b, a, w)))
  assert float(consistency.symmetric_kl_sums(a, a, w)) == pytest.approx(
    0, abs=1e-6
  )
  half = w.at[1].set(0.0)  # Row 1's steps do not count.
  want = float(consistency.symmetric_kl_sums(a[:1], b[:1], w[:1]))
  got = float(consistency.symmetric_kl_sums(a, b, half))
  assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_rdrop_loss_is_cross_entropy_plus_the_passes_disagreement(dropout):
  cfg, m, batch = distill_test.tiny_model_and_batch(dropout)
  params = models.init_params(cfg, jax.random.key(0))
  rdrop = consistency.make_rdrop_loss_fn(m, 0.1, alpha=2.0)
  plain = train_step.make_loss_fn(m, 0.1)
  rng = jax.random.key(5)
  (loss, sums), grads = jax.jit(
    jax.value_and_grad(lambda p: rdrop(p, batch, rng), has_aux=True)
  )(params)
  assert sums["tokens"] == 7 and all(
    bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads)
  )
  np.testing.assert_allclose(loss, sums["loss"] + 2.0 * sums["rdrop"])
  if dropout == 0.0:
    # One model, two identical passes: nothing to disagree on, and the
    # loss is the plain one.
    assert float(sums["rdrop"]) == pytest.approx(0, abs=1e-6)
    want, _ = jax.jit(lambda p: plain(p, batch, rng))(params)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
  else:
    # Two dropout masks disagree, and the KL term has a gradient.
    assert float(sums["rdrop"]) > 1e-4
    kl_grads = jax.jit(jax.grad(lambda p: rdrop(p, batch, rng)[1]["rdrop"]))(
      params
    )
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(kl_grads)) > 0


def test_rdrop_with_a_teacher_is_refused():
  cfg = tiny.get_config()
  cfg.train.rdrop = 1.0
  with pytest.raises(ValueError, match="rdrop and distillation"):
    training._p_step(cfg, None, (None,), jax.devices()[:1], None)


def test_a_tiny_rdrop_run_logs_its_term(tmp_path):
  cfg = tiny.get_config()
  cfg.train.rdrop, cfg.model.dropout = 1.0, 0.2
  cfg.train.num_steps, cfg.eval_every, cfg.log_every = 2, 2, 1
  training.train_and_evaluate(cfg, tmp_path)
  import tensorflow as tf

  tags = {
    v.tag
    for f in tmp_path.glob("events.out.tfevents*")
    for e in tf.compat.v1.train.summary_iterator(str(f))
    for v in e.summary.value
  }
  assert {"train/rdrop", "train/loss"} <= tags
