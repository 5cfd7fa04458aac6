"""Distillation: KD term, frozen teacher, teacher data files, tiny run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import distill, models, training
from pqrnn_jax import model as model_lib
from pqrnn_jax.data import readers
from pqrnn_jax.data.example import Example


def _scores(seed, shape=(2, 3, 7)):
  s = jax.random.normal(jax.random.key(seed), shape)
  return s.at[..., 0].set(-jnp.inf).at[1, :, -2:].set(-jnp.inf)


def test_kl_is_zero_when_student_equals_teacher():
  s, w = _scores(0), jnp.ones((2, 3))
  assert float(distill.kd_loss_sums(s, s, w, 2.0)) == pytest.approx(0, abs=1e-6)
  assert float(distill.kd_loss_sums(s, _scores(1), w, 2.0)) > 0.01


def test_kl_matches_hand_computation_and_respects_weights():
  s = jnp.array([[[0.0, 1.0, -jnp.inf]]])
  t = jnp.array([[[1.0, 0.0, -jnp.inf]]])
  temp = 2.0
  ps = np.exp([0, 0.5]) / np.exp([0, 0.5]).sum()
  pt = np.exp([0.5, 0]) / np.exp([0.5, 0]).sum()
  want = temp**2 * (pt * np.log(pt / ps)).sum()
  got = distill.kd_loss_sums(s, t, jnp.ones((1, 1)), temp)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert float(distill.kd_loss_sums(s, t, jnp.zeros((1, 1)), temp)) == 0.0


def tiny_model_and_batch(dropout=0.0):
  """(config, model, batch [2 rows, T 5, U 4]) of a few hundred params."""
  cfg = model_lib.ModelConfig(
    vocab_size=9,
    projection_size=16,
    bottleneck=8,
    qrnn_hidden=4,
    qrnn_layers=1,
    decoder_layers=1,
    heads=2,
    ffn=8,
    max_source_len=5,
    max_target_len=4,
    dropout=dropout,
    zoneout=0.0,
  )
  batch = {
    "fingerprints": jnp.arange(10, dtype=jnp.uint32).reshape(2, 5),
    "lengths": jnp.array([5, 3], jnp.int32),
    "targets": jnp.array([[3, 9, 2, 1], [3, 2, 1, 0]], jnp.int32),
    "weights": jnp.array([[1, 1, 1, 1], [1, 1, 1, 0]], jnp.float32),
  }
  return cfg, model_lib.Seq2Seq(cfg), batch


def test_gradients_reach_only_the_student():
  cfg, m, batch = tiny_model_and_batch()
  ps = models.init_params(cfg, jax.random.key(0))
  pt = models.init_params(cfg, jax.random.key(1))

  loss_fn = distill.make_kd_loss_fn(m, m, 0.0, 0.5, 2.0)
  # The loss train_step differentiates, by both parameter sets: the
  # teacher's scores are constants (stop_gradient), not merely unused.
  (_, sums), (gs, gt) = jax.jit(
    jax.value_and_grad(
      lambda ps, pt: loss_fn(ps, batch, jax.random.key(0), pt),
      argnums=(0, 1),
      has_aux=True,
    )
  )(ps, pt)
  assert float(sums["kd"]) > 0
  assert all(float(jnp.abs(x).sum()) == 0 for x in jax.tree.leaves(gt))
  assert sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(gs)) > 0


def test_teacher_file_roundtrip(tmp_path):
  exs = [
    Example(
      "a",
      "en_XX",
      "",
      "Wake me at 7:30",
      ("Wake", "me", "at", "7", ":", "30"),
      "[IN:CREATE_ALARM [SL:DATE_TIME at 7 : 30 ] ]",
    ),
    Example("b", "", "", "stop", ("stop",), "[IN:STOP ]"),
  ]
  distill.write_examples(tmp_path / "t.tsv", exs)
  back = readers.read_examples(tmp_path / "t.tsv")
  assert [(e.tokens, e.parse, e.utterance) for e in back] == [
    (e.tokens, e.parse, e.utterance) for e in exs
  ]


def test_mix_ratio():
  gold, teacher = list(range(10)), list(range(100, 130))
  mixed = distill.mix(gold, teacher, 0.5, seed=0)
  assert len(mixed) == 15 and mixed[:10] == gold
  assert len(distill.mix(gold, teacher[:3], 2.0, seed=0)) == 13


def test_tiny_distillation_end_to_end(tmp_path):
  teacher_cfg = tiny.get_config()
  teacher_cfg.model.bottleneck = 24
  training.train_and_evaluate(teacher_cfg, tmp_path / "teacher")
  (tmp_path / "more.txt").write_text("set an alarm for 6 am\nstop the timer\n")
  cfg = tiny.get_config()
  k = cfg.distill
  k.teacher_workdir = str(tmp_path / "teacher")
  k.alpha, k.sequence_from_teacher, k.teacher_beam = 0.5, True, 2
  k.unlabelled_file = str(tmp_path / "more.txt")
  metrics = training.train_and_evaluate(cfg, tmp_path / "student")
  assert "exact_match" in metrics
  labelled = readers.read_examples(tmp_path / "student" / "teacher_parses.tsv")
  assert len(labelled) == cfg.data.synthetic_sizes[0] + 2
  assert any(e.utterance == "stop the timer" for e in labelled)
  events = list((tmp_path / "student").glob("events.out.tfevents*"))
  assert events
