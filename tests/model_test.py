"""pQRNN-MAtt model: shapes, masking, causality, decode_step == decode."""

import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import model as model_lib
from pqrnn_jax import models, projection, targets
from tests import model_contract

V = 11


def _tiny(**kw):
  base = dict(
    projection_size=32,
    bottleneck=16,
    qrnn_hidden=8,
    qrnn_layers=2,
    decoder_layers=2,
    heads=2,
    ffn=24,
    max_source_len=7,
    max_target_len=6,
    dropout=0.0,
    zoneout=0.0,
  )
  base.update(kw)
  return model_lib.ModelConfig(vocab_size=V, **base)


def _batch(cfg, seed=0):
  b, t, u = 3, cfg.max_source_len, cfg.max_target_len
  k1, k2 = jax.random.split(jax.random.key(seed))
  fps = jax.random.bits(k1, (b, t), jnp.uint32)
  lengths = jnp.array([t, 4, 2], jnp.int32)
  actions = jax.random.randint(k2, (b, u), 1, V + 2)
  return fps, lengths, model_lib.shift_right(actions)


def test_shapes_dtypes_and_padded_pointers_under_jit():
  cfg = _tiny()
  params = models.init_params(cfg, jax.random.key(0))
  fps, lengths, inputs = _batch(cfg)
  apply = jax.jit(model_lib.Seq2Seq(cfg).apply)
  scores = apply({"params": params}, fps, lengths, inputs)
  assert scores.shape == (3, cfg.max_target_len, V + cfg.max_source_len)
  assert scores.dtype == jnp.float32
  s = np.asarray(scores)
  assert np.all(np.isneginf(s[1, :, V + 4 :])) and np.all(
    np.isneginf(s[2, :, V + 2 :])
  )
  assert np.all(np.isneginf(s[..., targets.PAD_ID]))
  assert np.all(np.isfinite(s[0, :, 1:]))


def test_int32_bitcast_fingerprints_give_same_scores():
  cfg = _tiny()
  params = models.init_params(cfg, jax.random.key(0))
  fps, lengths, inputs = _batch(cfg)
  m = model_lib.Seq2Seq(cfg)
  a = m.apply({"params": params}, fps, lengths, inputs)
  fps_i32 = jax.lax.bitcast_convert_type(fps, jnp.int32)
  b = m.apply({"params": params}, fps_i32, lengths, inputs)
  np.testing.assert_array_equal(a, b)


def test_decode_step_reproduces_decode():
  cfg = _tiny()
  model_contract.assert_decode_step_reproduces_decode(cfg, *_batch(cfg, 2))


def test_decoder_is_causal_by_gradients():
  cfg = _tiny()
  params = {"params": models.init_params(cfg, jax.random.key(3))}
  fps, lengths, inputs = _batch(cfg)
  m = model_lib.Seq2Seq(cfg)
  memory, mask = m.apply(params, fps, lengths, method=m.encode)
  u = cfg.max_target_len
  y0 = jax.random.normal(jax.random.key(4), (3, u, cfg.bottleneck))
  t0 = 2

  def out_t0(y):
    def run(mdl):
      x = y
      for layer in mdl.layers:
        x = layer(x, layer.memory_kv(memory), mask)
      return x

    return m.apply(params, method=run)[:, t0].sum()

  g = np.abs(np.asarray(jax.grad(out_t0)(y0))).sum(axis=(0, 2))
  assert np.all(g[t0 + 1 :] == 0) and np.all(g[: t0 + 1] > 0)


def test_padding_does_not_change_real_outputs():
  cfg = _tiny()
  model_contract.assert_padding_is_ignored(cfg, *_batch(cfg))


def test_default_config_fits_budget_for_mtop_ontology():
  cfg = model_lib.ModelConfig(vocab_size=200)
  params = jax.eval_shape(lambda: models.init_params(cfg, jax.random.key(0)))
  n = model_lib.param_count(params)
  assert 1_000_000 < n <= 3_500_000
  assert "MB int8" in models.summary(cfg, params)
  assert sum(model_lib.param_breakdown(params).values()) == n


def test_config_errors_are_clear():
  import ml_collections
  import pytest

  with pytest.raises(ValueError, match="pooling"):
    _tiny(pooling="nope")
  with pytest.raises(ValueError, match="dtype='float8'"):
    _tiny(dtype="float8")
  with pytest.raises(ValueError, match="unknown model config keys"):
    models.from_config(ml_collections.ConfigDict({"projection_sise": 3}), V)


def test_compute_dtype_auto_and_bfloat16_compute_with_float32_params():
  # "auto" is float32 on the CPU the tests run on, bfloat16 on GPU/TPU.
  assert model_lib.compute_dtype("auto") == jnp.float32
  cfg = _tiny(dtype="bfloat16")
  params = models.init_params(cfg, jax.random.key(0))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  fps, lengths, inputs = _batch(cfg)
  f32 = model_lib.Seq2Seq(_tiny()).apply(
    {"params": params}, fps, lengths, inputs
  )
  bf16 = model_lib.Seq2Seq(cfg).apply({"params": params}, fps, lengths, inputs)
  assert bf16.dtype == jnp.float32  # Scores (and so the loss) in float32.
  finite = np.isfinite(np.asarray(f32))
  np.testing.assert_array_equal(finite, np.isfinite(np.asarray(bf16)))
  np.testing.assert_allclose(
    np.asarray(bf16)[finite], np.asarray(f32)[finite], atol=0.1
  )
  assert cfg.for_export().dtype == "float32"


FEATS = ("shape", "suffix3")


def _feature_batch(cfg, seed=0):
  fps, lengths, inputs = _batch(cfg, seed)
  extra = jax.random.bits(jax.random.key(seed + 7), fps.shape + (2,))
  return jnp.concatenate([fps[..., None], extra], -1), lengths, inputs


def test_token_features_contract_and_shapes():
  cfg = _tiny(token_features=FEATS)
  fps, lengths, inputs = _feature_batch(cfg)
  assert fps.shape == projection.input_shape(
    cfg.token_features, cfg.max_source_len, 3
  )
  model_contract.assert_decode_step_reproduces_decode(cfg, fps, lengths, inputs)
  model_contract.assert_padding_is_ignored(cfg, fps, lengths, inputs)
  # Same parameter count as without features: they share the bottleneck.
  n = model_lib.param_count(models.init_params(cfg, jax.random.key(0)))
  assert n == model_lib.param_count(
    models.init_params(_tiny(), jax.random.key(0))
  )
  # The sub-word columns matter.
  params = {"params": models.init_params(cfg, jax.random.key(0))}
  m = model_lib.Seq2Seq(cfg)
  a = m.apply(params, fps, lengths, inputs)
  b = m.apply(params, fps.at[..., 1].set(3), lengths, inputs)
  assert not np.allclose(a, b)


def test_word_dropout_only_in_training():
  cfg = _tiny(token_features=FEATS, word_dropout=0.5)
  fps, lengths, inputs = _feature_batch(cfg)
  params = {"params": models.init_params(cfg, jax.random.key(0))}
  m = model_lib.Seq2Seq(cfg)
  ref = m.apply(params, fps, lengths, inputs)
  plain = model_lib.Seq2Seq(cfg.replace(word_dropout=0.0))
  np.testing.assert_allclose(ref, plain.apply(params, fps, lengths, inputs))

  def train(key, net=m):
    rngs = {"dropout": jax.random.key(key)}
    return net.apply(
      params, fps, lengths, inputs, deterministic=False, rngs=rngs
    )

  # dropout and zoneout are 0 in _tiny: any difference is word dropout.
  assert not np.allclose(train(0), train(1))
  np.testing.assert_allclose(train(0, plain), ref, atol=1e-5)


def test_fingerprints_of_the_wrong_shape_are_a_clear_error():
  import pytest

  cfg = _tiny(token_features=FEATS)
  fps, lengths, inputs = _batch(cfg)  # [B, T]: no feature columns.
  params = {"params": models.init_params(cfg, jax.random.key(0))}
  with pytest.raises(ValueError, match=r"wants \[B, T, 3\]"):
    model_lib.Seq2Seq(cfg).apply(params, fps, lengths, inputs)
  with pytest.raises(ValueError, match="token_features"):
    _tiny(token_features=("nope",))
  with pytest.raises(ValueError, match="word_dropout"):
    _tiny(word_dropout=1.0)


def test_select_fingerprints_for_a_teacher_with_other_features():
  import pytest

  fps = np.arange(2 * 3 * 3).reshape(2, 3, 3)
  have = ("shape", "suffix3")
  np.testing.assert_array_equal(
    projection.select_columns(fps, have, ()), fps[..., 0]
  )
  np.testing.assert_array_equal(
    projection.select_columns(fps, have, ("suffix3",)), fps[..., [0, 2]]
  )
  assert projection.select_columns(fps, have, have) is fps
  with pytest.raises(ValueError, match="prefix3"):
    projection.select_columns(fps, have, ("prefix3",))
