"""LSTM baseline: word ids, shapes, decode_step == decode, embeddings, e2e."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import (
  checkpoints,
  inference,
  models,
  projection,
  targets,
  training,
  word_table,
)
from pqrnn_jax import model as model_lib
from pqrnn_jax.baselines import lstm
from tests import model_contract

V = 11
SENTENCES = [["Wake", "me", "up", "at", "7"], ["wake", "me"], ["hi", "me"]]


def _tiny(**kw):
  base = dict(
    embed_size=8,
    lstm_hidden=6,
    bottleneck=12,
    max_source_len=7,
    max_target_len=6,
    dropout=0.0,
    word_min_count=1,
  )
  base.update(kw)
  cfg = lstm.LSTMConfig(vocab_size=V, **base)
  fps, lengths = projection.fingerprint_batch(SENTENCES, cfg.max_source_len)
  return cfg.replace(words=word_table.build_vocab(fps, lengths, cfg))


def _batch(cfg, seed=0):
  b, t, u = 3, cfg.max_source_len, cfg.max_target_len
  fps, _ = projection.fingerprint_batch(SENTENCES, t)
  # Unknown words after the known ones; row 0 is full length.
  fps[0, 5:] = projection.fingerprint(["never", "seen"])
  lengths = jnp.array([t, 4, 2], jnp.int32)
  actions = jax.random.randint(jax.random.key(seed), (b, u), 1, V + 2)
  return jnp.asarray(fps), lengths, model_lib.shift_right(actions)


def test_vocab_min_count_size_and_unknown_words():
  fps, lengths = projection.fingerprint_batch(SENTENCES, 7)
  cfg = _tiny()
  assert len(cfg.words) == 6  # Case-folded: "Wake" is "wake".
  assert list(cfg.words) == sorted(cfg.words)
  frequent = word_table.build_vocab(fps, lengths, cfg.replace(word_min_count=2))
  expected = projection.fingerprint(["me", "wake"]).view(np.int32)
  assert sorted(frequent) == sorted(expected.tolist())
  capped = word_table.build_vocab(fps, lengths, cfg.replace(word_vocab_size=1))
  assert capped == (int(projection.fingerprint(["me"]).view(np.int32)[0]),)
  query = projection.fingerprint(["ME", "unseen", "wake", "7"])[None]
  ids = np.asarray(word_table.word_ids(query, frequent))
  assert ids[0, 1] == ids[0, 3] == word_table.UNK_ID
  assert ids[0, 0] != ids[0, 2] and min(ids[0, 0], ids[0, 2]) >= 1
  as_int32 = word_table.word_ids(jnp.asarray(query).view(jnp.int32), frequent)
  np.testing.assert_array_equal(ids, as_int32)
  assert np.all(np.asarray(word_table.word_ids(query, ())) == word_table.UNK_ID)


def test_config_survives_json_and_stays_hashable():
  cfg = _tiny()
  back = models.from_meta(json.loads(json.dumps(dataclasses.asdict(cfg))))
  assert back == cfg and hash(back) == hash(cfg)
  assert "words=" not in repr(cfg)  # 20k ints would flood the logs.
  with pytest.raises(ValueError, match="arch"):
    models.from_config(dict(arch="gru"), V)
  with pytest.raises(ValueError, match="projection_size"):
    models.from_config(dict(arch="lstm", projection_size=8), V)


def test_shapes_dtypes_and_padded_pointers_under_jit():
  cfg = _tiny()
  params = models.init_params(cfg, jax.random.key(0))
  assert params["words"]["embedding"].shape == (len(cfg.words) + 1, 8)
  fps, lengths, inputs = _batch(cfg)
  apply = jax.jit(models.make_model(cfg).apply)
  scores = apply({"params": params}, fps, lengths, inputs)
  assert scores.shape == (3, cfg.max_target_len, V + cfg.max_source_len)
  assert scores.dtype == jnp.float32
  s = np.asarray(scores)
  assert np.all(np.isneginf(s[1, :, V + 4 :]))
  assert np.all(np.isneginf(s[2, :, V + 2 :]))
  assert np.all(np.isneginf(s[..., targets.PAD_ID]))
  assert np.all(np.isfinite(s[0, :, 1:]))
  assert "LSTM seq2seq" in models.summary(cfg, params)


def test_decode_step_reproduces_decode():
  cfg = _tiny()
  model_contract.assert_decode_step_reproduces_decode(cfg, *_batch(cfg, 2))


def test_padding_does_not_change_real_outputs():
  cfg = _tiny()
  model_contract.assert_padding_is_ignored(cfg, *_batch(cfg))


def test_embedding_file_initialises_known_rows(tmp_path):
  cfg = _tiny()
  path = tmp_path / "vectors.txt"
  vec = lambda x: " ".join(str(x + i / 10) for i in range(8))
  path.write_text(
    f"5 8\nWAKE {vec(1)}\nwake {vec(2)}\nzebra {vec(3)}\nme {vec(4)}\n"
  )
  params = models.init_params(cfg, jax.random.key(0))
  new, found = lstm.load_embeddings(params, cfg, path)
  assert found == 2
  table, old = np.asarray(new["words"]["embedding"]), params["words"]
  ids = np.asarray(
    word_table.word_ids(projection.fingerprint(["wake", "me"]), cfg.words)
  )
  # The first line of a word wins ("WAKE" before "wake").
  np.testing.assert_allclose(table[ids[0]], 1 + np.arange(8) / 10, 1e-6)
  np.testing.assert_allclose(table[ids[1]], 4 + np.arange(8) / 10, 1e-6)
  others = np.setdiff1d(np.arange(len(table)), ids)
  np.testing.assert_array_equal(
    table[others], np.asarray(old["embedding"])[others]
  )
  path.write_text(f"me {vec(0)} 9.0\n")
  with pytest.raises(ValueError, match="embed_size"):
    lstm.load_embeddings(params, cfg, path)


def test_train_restore_evaluate_predict_end_to_end(tmp_path):
  from configs import lstm_mtop

  cfg = tiny.get_config()
  t, u = cfg.model.max_source_len, cfg.model.max_target_len
  cfg.model = m = lstm_mtop.get_config().model  # The LSTM's own keys.
  m.embed_size, m.lstm_hidden, m.word_min_count, m.bottleneck = 8, 8, 1, 16
  m.max_source_len, m.max_target_len, m.dropout = t, u, 0.1
  m.embedding_file = str(tmp_path / "vectors.txt")
  (tmp_path / "vectors.txt").write_text("alarm " + " ".join(["0.5"] * 8))
  cfg.train.num_steps, cfg.eval_every, cfg.checkpoint_every = 3, 3, 100
  cfg.train.devices = 1
  metrics = training.train_and_evaluate(cfg, tmp_path / "run")
  assert metrics["invalid_tree_rate"] == 0.0  # Constrained decoding.
  # Rerun at the end: the vocabulary (and so the table) comes from meta.
  assert training.train_and_evaluate(cfg, tmp_path / "run") == {}
  model_cfg, ont, params, _ = checkpoints.load_for_inference(tmp_path / "run")
  assert model_cfg.arch == "lstm" and len(model_cfg.words) > 50
  sentences = [["wake", "me", "at", "7"], ["Hi"]]
  for beam in (1, 2):
    parser = inference.Parser(model_cfg, params, ont, batch_size=4)
    parses = parser.parse_tokens(sentences, beam_size=beam)
    assert len(parses) == 2 and all(p.startswith("[IN:") for p in parses)
  # Same export path as pQRNN-MAtt: unrolled loops, builtin ops, and the
  # float file's greedy parses are JAX's.
  from pqrnn_jax import export, input_pipeline, metrics, tflite_runner

  tokens = [e.tokens for e in input_pipeline.load_split(cfg.data, "test")]
  parser = inference.Parser(model_cfg, params, ont, batch_size=8)
  want = parser.parse_tokens(tokens)
  for variant in ("float", "int8"):
    # One length bucket (T_max): buckets are pQRNN-MAtt's tests' concern.
    r = export.export_workdir(
      tmp_path / "run", tmp_path / f"{variant}.tflite", variant, 48, buckets=()
    )
    assert "UNIDIRECTIONAL" not in str(r["ops"])
    p = tflite_runner.TFLiteParser(r["path"])
    # The encoder is unrolled; the float file's parse_<t> loops in the file.
    assert r["ops"].get("WHILE", 0) == len(p.parse_buckets)
    assert bool(p.parse_buckets) == (variant == "float")
    assert set(p._zeros) == {"lstm_c", "lstm_h"}
    got = [p.parse_tokens(t) for t in tokens]
    if variant == "float":
      assert got == want
    assert all(metrics.is_valid_tree(g) for g in got)
  # int8 parity, fed its own LSTM state, by the bound of export_test.
  from tests import export_test

  pairs = export_test._own_state_run(
    (model_cfg, params, ont, None, {"int8": r}), "int8"
  )
  rel = [np.abs(g - w).max() / (w.max() - w.min()) for g, w in pairs]
  assert max(rel) < 40 / 255 and np.mean(rel) < 10 / 255, (max(rel), rel)


@pytest.mark.parametrize("w", [1, 2, 3, 7, 8, 100, 1000])
def test_rank_equals_searchsorted(w):
  rng = np.random.default_rng(w)
  vocab = np.unique(rng.integers(-(2**31), 2**31, w).astype(np.int32))
  x = np.concatenate(
    [vocab, rng.integers(-(2**31), 2**31, 200).astype(np.int32)]
  )
  x = np.concatenate([x, [np.iinfo(np.int32).min, np.iinfo(np.int32).max]])
  got = word_table._rank(jnp.asarray(vocab), jnp.asarray(x, np.int32))
  np.testing.assert_array_equal(got, np.searchsorted(vocab, x))
