"""Tests for pqrnn_jax.projection."""

import struct

import jax
import jax.numpy as jnp
import mmh3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqrnn_jax import projection

_RNG = np.random.default_rng(1234)


def _random_fps(shape):
  return _RNG.integers(0, 2**32, size=shape, dtype=np.uint32)


@pytest.mark.parametrize("feature_size", [1, 16, 64, 100, 512, 1024])
def test_jax_and_numpy_are_bit_identical(feature_size):
  fps = _random_fps((3, 7))
  fps[0, 0] = 0
  fps[0, 1] = 2**32 - 1
  got = jax.jit(projection.project, static_argnums=1)(fps, feature_size)
  want = projection.project_np(fps, feature_size)
  assert got.shape == (3, 7, feature_size) and got.dtype == jnp.float32
  assert want.shape == (3, 7, feature_size) and want.dtype == np.float32
  np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("feature_size", [64, 100])
def test_int32_bitcast_input_equals_uint32_input(feature_size):
  fps = _random_fps((2, 9))
  fps[1, 0] = 2**31  # int32 min after the bitcast
  as_i32 = fps.view(np.int32)
  assert (as_i32 < 0).any()
  want = projection.project(fps, feature_size)
  np.testing.assert_array_equal(projection.project(as_i32, feature_size), want)
  np.testing.assert_array_equal(
    projection.project(jnp.asarray(as_i32), feature_size), want
  )
  np.testing.assert_array_equal(
    projection.project_np(as_i32, feature_size), np.asarray(want)
  )


def test_project_rejects_other_dtypes_and_sizes():
  with pytest.raises(TypeError):
    projection.project(np.zeros((2,), np.float32), 16)
  with pytest.raises(TypeError):
    projection.project_np(np.zeros((2,), np.int64), 16)
  with pytest.raises(ValueError):
    projection.project_np(np.zeros((2,), np.uint32), 0)


def test_project_under_jit_shape_and_values():
  fps = _random_fps((4, 11))
  out = jax.jit(projection.project, static_argnums=1)(fps, 100)
  assert out.shape == (4, 11, 100) and out.dtype == jnp.float32
  assert set(np.unique(np.asarray(out)).tolist()) <= {-1.0, 0.0, 1.0}


def test_jaxpr_uses_only_tflite_safe_integer_ops():
  fps = _random_fps((2, 5)).view(np.int32)
  jaxpr = jax.make_jaxpr(lambda f: projection.project(f, 100))(fps)
  names = [eqn.primitive.name for eqn in jaxpr.eqns]
  assert "shift_right_logical" in names  # the check below is not vacuous
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    in_dtypes = {v.aval.dtype for v in eqn.invars}
    assert name not in ("and", "or", "shift_left", "iota"), name
    if name == "shift_right_logical":
      assert in_dtypes == {np.dtype(np.uint32)}, eqn
    if name in ("sub", "rem"):
      assert np.dtype(np.uint32) not in in_dtypes, eqn


def test_fingerprint_zero_gives_nonzero_row():
  row = projection.project_np(np.zeros((1,), np.uint32), 256)[0]
  assert np.count_nonzero(row) > 64


def test_feature_distribution_is_quarter_half_quarter():
  tokens = [f"tok{i}_{i * 7919 % 1000}" for i in range(2000)]
  feats = projection.project_np(projection.fingerprint(tokens), 256)
  for value, want in ((-1.0, 0.25), (0.0, 0.5), (1.0, 0.25)):
    assert abs(np.mean(feats == value) - want) < 0.01, value
  # Each feature column is balanced too, not just the pool.
  assert np.abs(feats.mean(axis=0)).max() < 0.1


def test_features_of_different_tokens_are_nearly_uncorrelated():
  tokens = [f"w{i}" for i in range(300)]
  feats = projection.project_np(projection.fingerprint(tokens), 512)
  corr = np.corrcoef(feats)
  off_diag = corr[~np.eye(len(tokens), dtype=bool)]
  # Independent ternary rows of length 512: |r| ~ 0.035 on average.
  assert np.abs(off_diag).mean() < 0.05
  assert np.abs(off_diag).max() < 0.3
  # Sequential fingerprints (worst case for a weak mixer) as well.
  seq = projection.project_np(np.arange(300, dtype=np.uint32), 512)
  corr = np.corrcoef(seq)[~np.eye(300, dtype=bool)]
  assert np.abs(corr).mean() < 0.05


def test_words_of_one_token_are_not_repeated():
  # 1024 features need 64 words; blocks of 16 features must all differ.
  feats = projection.project_np(_random_fps((50,)), 1024).reshape(50, 64, 16)
  for row in feats:
    assert len({block.tobytes() for block in row}) == 64


def test_fingerprint_is_mmh3_of_casefolded_utf8():
  got = projection.fingerprint(["Hello", "hello", "STRASSE", "straße", ""])
  assert got.dtype == np.uint32 and got.shape == (5,)
  assert got[0] == got[1] == mmh3.hash(b"hello", 0, False)
  assert got[2] == got[3]  # casefold maps "ß" to "ss"
  assert got[4] == 0  # murmur3 of no bytes with seed 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(), max_size=5))
def test_fingerprint_arbitrary_unicode(tokens):
  fps = projection.fingerprint(tokens)
  assert fps.dtype == np.uint32 and fps.shape == (len(tokens),)
  np.testing.assert_array_equal(fps, projection.fingerprint(tokens))
  np.testing.assert_array_equal(
    fps, projection.fingerprint([t.casefold() for t in tokens])
  )
  # st.text() has no lone surrogates, so mmh3 may encode the str itself.
  want = [mmh3.hash(t.casefold(), 0, False) for t in tokens]
  np.testing.assert_array_equal(fps, np.array(want, np.uint32))


def test_fingerprint_lone_surrogate_does_not_raise():
  assert projection.fingerprint(["a\ud800"]).shape == (1,)


def test_fingerprint_batch_pads_and_reports_lengths():
  fps, lengths = projection.fingerprint_batch([["a", "B"], [], ["c"]], 3)
  assert fps.dtype == np.uint32 and fps.shape == (3, 3)
  assert lengths.dtype == np.int32 and lengths.tolist() == [2, 0, 1]
  np.testing.assert_array_equal(fps[0, :2], projection.fingerprint(["a", "b"]))
  assert fps[0, 2] == 0 and (fps[1] == 0).all() and (fps[2, 1:] == 0).all()


def test_fingerprint_batch_refuses_to_truncate_silently():
  with pytest.raises(ValueError, match="example 1"):
    projection.fingerprint_batch([["a"], ["a", "b", "c"]], 2)
  fps, lengths = projection.fingerprint_batch(
    [["a"], ["a", "b", "c"]], 2, truncate=True
  )
  assert lengths.tolist() == [1, 2]
  np.testing.assert_array_equal(fps[1], projection.fingerprint(["a", "b"]))


# --- Reference-compatible mode. ---
#
# A second implementation of the ARCHITECTURE.md section 1 spec, written
# differently on purpose: numpy uint64 arithmetic wraps by itself (no masks),
# blocks are read with struct, and bits come from a base-4 digit expansion.

_U64 = np.uint64


def _spec_codes(data: bytes, pairs: int, signed_char: bool = False):
  m1, m2 = _U64(0xC6A4A7935BD1E995), _U64(0x9E3779B97F4A7835)

  def mix(v):
    return v ^ (v >> _U64(47))

  def load(chunk):
    if signed_char:
      # Sign-extending `char` loads, byte by byte from the last one.
      v = 0
      for byte in reversed(chunk):
        v = (v * 256 + (byte - 256 if byte > 127 else byte)) % 2**64
        if byte > 127:
          v = v | (2**64 - 256)  # the OR with a sign-extended byte
      return _U64(v)
    return _U64(struct.unpack("<Q", chunk.ljust(8, b"\0"))[0])

  with np.errstate(over="ignore"):
    a, b = _U64(len(data)) * m1, _U64(0)
    n8 = len(data) // 8 * 8
    for (w,) in struct.iter_unpack("<8s", data[:n8]):
      a = (a ^ (mix(load(w) * m1) * m1)) * m1
      b = b ^ a
    if data[n8:]:
      a = (a ^ load(data[n8:])) * m1
      b = b ^ a
    a = mix(a) * m1
    b = b ^ a
    a = mix(a)
    b = mix(b * m2) * m2
    codes = [int(a), int(b)]
    lo, hi = a, b
    for _ in range(pairs - 1):
      t = mix(lo) * m1
      lo, hi = mix((hi ^ t) * m2) * m2, mix(t)
      codes += [int(lo), int(hi)]
  return codes


def _spec_features(token: str, feature_size: int, signed_char: bool = False):
  data = token.encode("utf-8", "surrogatepass") if token else b"<null>"
  codes = _spec_codes(data, -(-feature_size // 64), signed_char)
  digits = []
  for code in codes:
    for _ in range(32):
      code, d = divmod(code, 4)
      digits.append({0: 0, 1: 1, 2: -1, 3: 0}[d])
  return np.array(digits[:feature_size], np.int8)


# (token, first murmur128 word lo, hi): computed with _spec_codes above,
# pinned here so that the two implementations cannot drift together.
_GOLDEN_CODES = [
  ("hello", 0x1E68D17C457BF117, 0x1AEC33D7DD3E8013),
  ("<null>", 0x4CEB8215F2F24D4F, 0x9AA1CDF144676538),
  ("abcdefgh", 0xAFDB0257FF41AA98, 0xD9AD87054D722C5F),  # one whole block
  ("the quick brown fox", 0x892392F71D010872, 0xB171CCF44E53E215),
]


@pytest.mark.parametrize("token,lo,hi", _GOLDEN_CODES)
def test_reference_golden_codes(token, lo, hi):
  assert _spec_codes(token.encode(), 1) == [lo, hi]
  want = _spec_features(token, 64)
  np.testing.assert_array_equal(projection.reference_features(token, 64), want)


def test_reference_bit_order_decoded_by_hand():
  # "hello": lo ends in 0x...F117 and hi in 0x...13. Two bits per feature,
  # lowest first: 0x17 = 00 01 01 11 -> [0, +1, +1, 0]; 0xF1 = 11 11 00 01
  # -> [+1, 0, 0, 0]; feature 32 starts hi: 0x13 = 00 01 00 11
  # -> [0, 0, +1, 0].
  got = projection.reference_features("hello", 64)
  assert got[:8].tolist() == [0, 1, 1, 0, 1, 0, 0, 0]
  assert got[32:36].tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize("feature_size", [1, 16, 63, 64, 65, 100, 300])
@pytest.mark.parametrize(
  "token", ["", "hello", "abcdefgh", "abcdefghi", "münchen", "日本語テキスト"]
)
def test_reference_features_match_spec(token, feature_size):
  got = projection.reference_features(token, feature_size)
  assert got.dtype == np.int8 and got.shape == (feature_size,)
  np.testing.assert_array_equal(got, _spec_features(token, feature_size))


def test_reference_empty_token_hashes_as_null():
  np.testing.assert_array_equal(
    projection.reference_features("", 128),
    projection.reference_features("<null>", 128),
  )


def test_reference_signed_char_differs_only_for_non_ascii():
  for token in ("hello", "münchen", "日本"):
    got = projection.reference_features(token, 128, signed_char=True)
    np.testing.assert_array_equal(got, _spec_features(token, 128, True))
  ascii_signed = projection.reference_features("hello", 128, signed_char=True)
  np.testing.assert_array_equal(
    ascii_signed, projection.reference_features("hello", 128)
  )
  assert not np.array_equal(
    projection.reference_features("münchen", 128, signed_char=True),
    projection.reference_features("münchen", 128),
  )


@settings(max_examples=40, deadline=None)
@given(st.text(), st.integers(1, 200))
def test_reference_features_arbitrary_unicode(token, feature_size):
  got = projection.reference_features(token, feature_size)
  assert got.shape == (feature_size,)
  assert set(got.tolist()) <= {-1, 0, 1}
  np.testing.assert_array_equal(got, _spec_features(token, feature_size))


@pytest.mark.slow
def test_tflite_conversion_is_builtin_only_and_bit_exact(tmp_path):
  tf = pytest.importorskip("tensorflow")
  jax2tf = pytest.importorskip("jax.experimental.jax2tf")
  litert = pytest.importorskip("ai_edge_litert.interpreter")
  fps = _random_fps((2, 5))
  fps[0, :3] = [0, 2**32 - 1, 2**31]
  f_tf = tf.function(
    jax2tf.convert(
      lambda ids: projection.project(ids, 100), with_gradient=False
    ),
    input_signature=[tf.TensorSpec(fps.shape, tf.int32, name="ids")],
    autograph=False,
  )
  module = tf.Module()
  module.f = f_tf
  signatures = {"serving_default": f_tf.get_concrete_function()}
  tf.saved_model.save(module, str(tmp_path), signatures=signatures)
  # The default converter allows TFLite builtins only (no flex, no custom
  # ops), so converting at all is the check; equality catches ops that
  # convert but compute something else (int32 RIGHT_SHIFT).
  tflite = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path)).convert()
  interpreter = litert.Interpreter(model_content=tflite)
  runner = interpreter.get_signature_runner("serving_default")
  (out,) = runner(ids=fps.view(np.int32)).values()
  np.testing.assert_array_equal(out, projection.project_np(fps, 100))


# --- Token features (sub-word hashes beside the word). ---


def test_token_features_columns_word_first_then_namespaced_features():
  tokens = ["Brennick", "Trennick", "nick", "7:30"]
  feats = ("shape", "prefix3", "suffix3")
  fps = projection.fingerprint(tokens, feats)
  assert fps.shape == (4, 4) and fps.dtype == np.uint32
  np.testing.assert_array_equal(fps[:, 0], projection.fingerprint(tokens))
  # Unseen names share shape and suffix with seen ones, not the prefix.
  assert fps[0, 1] == fps[1, 1] and fps[0, 3] == fps[1, 3]
  assert fps[0, 2] != fps[1, 2]
  assert fps[0, 1] != fps[3, 1]  # "Xx" vs "d:d".
  # "ick" as a suffix is namespaced: not the hash of the word "ick".
  assert fps[2, 3] != projection.fingerprint(["ick"])[0]
  assert fps[2, 2] != fps[2, 3]  # prefix "nic" and suffix "ick" differ.
  p3 = projection.fingerprint(["abc"], ("prefix3", "suffix3"))[0]
  assert p3[1] != p3[2]  # Same string "abc", two namespaces.


@pytest.mark.parametrize(
  "token,shape",
  [("Marta", "Xx"), ("7:30", "d:d"), ("iPhone", "xXx"), ("am", "x"),
   ("U.S.", "X.X."), ("ÉCOLE", "X"), ("", "")],
)  # fmt: skip
def test_shape_feature(token, shape):
  assert projection.TOKEN_FEATURES["shape"](token) == shape


def test_unknown_or_repeated_feature_is_a_clear_error():
  with pytest.raises(ValueError, match="suffix3"):
    projection.fingerprint(["a"], ("sufix3",))
  with pytest.raises(ValueError, match="at most once"):
    projection.check_features(("shape", "shape"))


def test_fingerprint_batch_with_features_pads_with_zero_rows():
  fps, lengths = projection.fingerprint_batch(
    [["Hi", "there"], ["x"]], 4, features=("suffix2",)
  )
  assert fps.shape == (2, 4, 2) and list(lengths) == [2, 1]
  assert np.all(fps[1, 1:] == 0) and np.all(fps[0, :2] != 0)
  np.testing.assert_array_equal(
    fps[0, :2], projection.fingerprint(["Hi", "there"], ("suffix2",))
  )


def test_bag_sums_views_and_word_keep_drops_only_the_word():
  p = jnp.asarray(_RNG.normal(size=(2, 3, 4, 5)), jnp.float32)
  np.testing.assert_allclose(projection.bag(p), p.sum(axis=2), atol=1e-6)
  keep = jnp.array([[1, 0, 1], [0, 0, 1]])
  got = np.asarray(projection.bag(p, keep))
  want = np.asarray(p.sum(axis=2) - (1 - keep)[..., None] * p[:, :, 0])
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_tflite_projection_stores_no_full_size_constant():
  # A shift or compare against a constant gets that constant broadcast to
  # [1, T, K, W, 32] in the file (655 KB here); the projection must not.
  tf = pytest.importorskip("tensorflow")
  jax2tf = pytest.importorskip("jax.experimental.jax2tf")
  litert = pytest.importorskip("ai_edge_litert.interpreter")
  f_tf = tf.function(
    jax2tf.convert(
      lambda f: projection.bag(projection.project(f, 512)),
      with_gradient=False,
    ),
    input_signature=[tf.TensorSpec((1, 40, 4), tf.int32)],
    autograph=False,
  )
  conv = tf.lite.TFLiteConverter.from_concrete_functions(
    [f_tf.get_concrete_function()], f_tf
  )
  tflite = conv.convert()
  assert len(tflite) < 100_000, len(tflite)
  fps = _random_fps((1, 40, 4))
  interp = litert.Interpreter(model_content=tflite)
  interp.allocate_tensors()
  interp.set_tensor(interp.get_input_details()[0]["index"], fps.view(np.int32))
  interp.invoke()
  out = interp.get_tensor(interp.get_output_details()[0]["index"])
  np.testing.assert_array_equal(out, projection.project_np(fps, 512).sum(-2))
