"""Hashing projection: tokens -> 32-bit fingerprints -> ternary features.

The host hashes each case-folded token to one uint32 fingerprint; the graph
expands fingerprints into F features in {-1, 0, +1} with P(0) = 1/2 and
P(+1) = P(-1) = 1/4. The expansion uses only uint32 MUL, XOR, logical right
shift and ADD, the integer ops that convert to TFLite builtins bit-exactly
(TOOLCHAIN.md 4.3): no `&`, `|`, `<<`, uint32 `-` or `%`, and no logical
shift on int32, which TFLite turns into an arithmetic one. A feature's two
bits are read by int32 compares of the bitcast word products, flattened to
rank 2 first: at higher rank, as for any shift, the converter stores the
constant operand broadcast to the full [T, W, 16] shape.
"""

import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import mmh3
import numpy as np

# Version of what a token becomes (fingerprint + projected features). Every
# checkpoint and .tflite records it; a change of either function must bump
# it, update the golden values in tests/golden_test.py, and old files are
# then refused clearly instead of parsing garbage.
FORMAT_VERSION = 1

# murmur3 fmix32 multipliers and the 32-bit golden ratio (Weyl step).
_FMIX_M1 = 0x85EBCA6B
_FMIX_M2 = 0xC2B2AE35
_GOLDEN = 0x9E3779B9
# Two hash bits per feature, so one 32-bit word feeds 16 features.
_FEATURES_PER_WORD = 16


def _shape(token: str) -> str:
  """Character classes with runs collapsed: "Marta" -> "Xx", "7:30" ->
  "d:d", "iPhone" -> "xXx"; capitalisation survives case folding here."""
  out = []
  for ch in token:
    c = (
      "X"
      if ch.isupper()
      else "x"
      if ch.islower()
      else ("d" if ch.isdigit() else ch)
    )
    if not out or out[-1] != c:
      out.append(c)
  return "".join(out)


# Sub-word views of a token, hashed beside the word itself when listed in
# config.model.token_features: an unseen word ("Brennick") still shares its
# shape and affixes with words seen in training. Each maps the original
# token to a string; affixes are of the case-folded token.
TOKEN_FEATURES = {
  "shape": _shape,
  "prefix2": lambda t: t.casefold()[:2],
  "prefix3": lambda t: t.casefold()[:3],
  "prefix4": lambda t: t.casefold()[:4],
  "suffix2": lambda t: t.casefold()[-2:],
  "suffix3": lambda t: t.casefold()[-3:],
  "suffix4": lambda t: t.casefold()[-4:],
}


def check_features(features: Sequence[str]) -> tuple[str, ...]:
  """The features as a tuple; raises on an unknown or repeated name."""
  features = tuple(features)
  bad = [f for f in features if f not in TOKEN_FEATURES]
  if bad or len(set(features)) != len(features):
    raise ValueError(
      f"token_features={features}: each at most once, from "
      f"{sorted(TOKEN_FEATURES)}"
    )
  return features


def _murmur(text: str) -> int:
  # Seed 0 and unsigned, so any MurmurHash3 library reproduces it.
  # surrogatepass: a lone surrogate (not valid text, but a legal Python str)
  # gets a fingerprint instead of raising deep inside a data pipeline.
  return mmh3.hash(text.encode("utf-8", "surrogatepass"), 0, False)


def fingerprint(
  tokens: Sequence[str], features: Sequence[str] = ()
) -> np.ndarray:
  """Standard hash: MurmurHash3_x86_32(casefold(t) as UTF-8): uint32 [T].

  With features, uint32 [T, 1 + K]: column 0 is the word's hash as above,
  column 1 + k hashes "<name>\\x1f<value>" of feature k (a namespace, so a
  suffix never collides with the same string as a word).
  """
  features = check_features(features)
  words = [_murmur(t.casefold()) for t in tokens]
  if not features:
    return np.array(words, dtype=np.uint32)
  cols = [words] + [
    [_murmur(f"{f}\x1f{TOKEN_FEATURES[f](t)}") for t in tokens]
    for f in features
  ]
  return np.array(cols, dtype=np.uint32).T.copy()


def fingerprint_batch(
  token_lists: Sequence[Sequence[str]],
  max_len: int,
  truncate: bool = False,
  features: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
  """Fingerprints padded with 0: (uint32 [B, max_len] or, with features,
  [B, max_len, 1 + K]; int32 lengths [B])."""
  if max_len < 0:
    raise ValueError(f"max_len must be >= 0, got {max_len}")
  extra = (1 + len(features),) if features else ()
  fps = np.zeros((len(token_lists), max_len, *extra), np.uint32)
  lengths = np.zeros((len(token_lists),), np.int32)
  for i, tokens in enumerate(token_lists):
    if len(tokens) > max_len:
      if not truncate:
        raise ValueError(
          f"example {i} has {len(tokens)} tokens > max_len={max_len}; "
          "pass truncate=True to cut it"
        )
      tokens = tokens[:max_len]
    fps[i, : len(tokens)] = fingerprint(tokens, features)
    lengths[i] = len(tokens)
  return fps, lengths


class FormatError(ValueError):
  """A checkpoint or .tflite of another projection format."""


def check_format(version, where) -> None:
  """Raises unless `version` (None: written before versions, i.e. 1) is
  this code's FORMAT_VERSION."""
  version = 1 if version is None else version
  if version != FORMAT_VERSION:
    raise FormatError(
      f"{where} was made with projection format {version}, this code has "
      f"format {FORMAT_VERSION}: retrain or re-export with this version, or "
      "install the pqrnn_jax version that made it"
    )


def featurize(token_lists, max_len: int, features=(), *, truncate=True):
  """The one path from token lists to model inputs: uint32 fingerprints
  [N, max_len] ([N, max_len, 1 + K] with K features), int32 lengths [N],
  and how many lists were cut to max_len (with one warning; the model
  cannot see past T_max). An empty list is refused."""
  empty = [i for i, t in enumerate(token_lists) if not t]
  if empty:
    raise ValueError(f"input #{empty[0]} is empty: nothing to parse")
  too_long = [i for i, t in enumerate(token_lists) if len(t) > max_len]
  if too_long and truncate:
    logging.warning(
      "%d input(s) longer than the model's maximum of %d tokens were "
      "truncated (first: #%d with %d tokens)",
      len(too_long),
      max_len,
      too_long[0],
      len(token_lists[too_long[0]]),
    )
  fps, lengths = fingerprint_batch(
    [list(t) for t in token_lists], max_len, truncate, features
  )
  return fps, lengths, len(too_long)


def input_shape(features, max_len: int, batch: int) -> tuple[int, ...]:
  """[B, T_max], or [B, T_max, 1 + K] with K token features."""
  k = len(features)
  return (batch, max_len) + ((1 + k,) if k else ())


def check_input(fingerprints, features) -> None:
  """Raises (at trace time) when the fingerprints' rank or column count do
  not match the model's token features."""
  k = len(features)
  want = f"[B, T, {1 + k}] (word + {tuple(features)})" if k else "[B, T]"
  ok = fingerprints.ndim == 3 and fingerprints.shape[2] == 1 + k
  if not (ok if k else fingerprints.ndim == 2):
    raise ValueError(
      f"fingerprints of shape {tuple(fingerprints.shape)}, the model wants "
      f"{want}: compute them with projection.featurize(token_lists, "
      "max_len, config.token_features)"
    )


def feature_columns(have: tuple, want: tuple):
  """Columns of fingerprints hashed with token features `have` that a model
  with features `want` reads: None (all, as they are), 0 (the word only) or
  a list; raises when `want` needs a feature `have` lacks."""
  have, want = tuple(have), tuple(want)
  if have == want:
    return None
  missing = [f for f in want if f not in have]
  if missing:
    raise ValueError(
      f"the model needs token features {missing} that the inputs lack "
      f"(inputs have {have}): add them to the student's "
      "model.token_features"
    )
  return [0] + [1 + have.index(f) for f in want] if want else 0


def select_columns(fingerprints, have: tuple, want: tuple):
  """Fingerprints computed with token features `have` -> those a model with
  features `want` reads (e.g. a KD teacher or a word table: fewer views)."""
  cols = feature_columns(have, want)
  if cols is None:
    return fingerprints
  return fingerprints[..., cols if cols == 0 else np.asarray(cols)]


def bag(features_BxTxKxF, word_keep_BxT=None):
  """Sum of a token's K feature projections [..., T, K, F] -> [..., T, F];
  word_keep (0/1, [..., T]) scales column 0, the whole-word hash (word
  dropout: the model must also read unseen words from shape and affixes)."""
  p = features_BxTxKxF
  if word_keep_BxT is not None:
    # A [.., T, K] scale (keep, 1, .., 1), not a scatter into column 0: XLA
    # fuses the product into the sum (the scatter cost a full extra pass).
    keep = word_keep_BxT[..., None].astype(p.dtype)
    rest = jnp.ones(keep.shape[:-1] + (p.shape[-2] - 1,), p.dtype)
    p = p * jnp.concatenate([keep, rest], axis=-1)[..., None]
  return p.sum(axis=-2)


def _num_words(feature_size: int) -> int:
  """ceil(2F / 32) 32-bit words per token."""
  if feature_size < 1:
    raise ValueError(f"feature_size must be >= 1, got {feature_size}")
  return -(-feature_size // _FEATURES_PER_WORD)


def _word_offsets(num_words: int) -> np.ndarray:
  """(j + 1) * golden ratio mod 2^32 for j < num_words, uint32 [W]."""
  j = np.arange(1, num_words + 1, dtype=np.uint64)
  return ((j * _GOLDEN) % (1 << 32)).astype(np.uint32)


def _fmix32(h, xp):
  """murmur3 finalizer on uint32 arrays (xp is jnp or np); a bijection."""
  h = h ^ (h >> xp.uint32(16))
  h = h * xp.uint32(_FMIX_M1)
  h = h ^ (h >> xp.uint32(13))
  h = h * xp.uint32(_FMIX_M2)
  return h ^ (h >> xp.uint32(16))


def _as_int32(x_u32, xp):
  """The same 32 bits read as int32 (a bitcast, never a value conversion)."""
  if xp is np:
    return x_u32.view(np.int32)
  return jax.lax.bitcast_convert_type(x_u32, jnp.int32)


def _ternary(fps_u32, feature_size: int, xp):
  """Shared body of project/project_np: uint32 [...] -> float32 [..., F]."""
  num_words = _num_words(feature_size)
  offsets = xp.asarray(_word_offsets(num_words))
  # SplitMix-style: mix the fingerprint once, step it by a Weyl sequence and
  # mix again, so each word looks independent and fingerprint 0 (fmix32(0) is
  # 0) still yields non-zero words.
  state = _fmix32(fps_u32, xp)
  words = _fmix32(state[..., None] + offsets, xp)  # [..., W]
  # Feature k of a word is bit 2k (low) minus bit 2k + 1 (high). Without
  # `&` or `<<`: multiplying by 2^(30 - 2k) (uint32 wraps) moves them to
  # bits 30 and 31, and the two top bits of the same 32 bits read as int32
  # x are 01 (+1) iff x >= 2^30, 10 (-1) iff x < -2^30, else 00 or 11 (0):
  # two exact int32 compares. 16 products per word, not one per bit. MUL
  # broadcasts in TFLite, and so do the compares once x is rank 2; at
  # higher rank (and for RIGHT_SHIFT at any) the converter stores the
  # constant at the full [.., T, W, 16] shape (100 KB per op at T = 12).
  top = xp.asarray((2 ** (30 - 2 * np.arange(16))).astype(np.uint32))
  x = _as_int32(words[..., None] * top, xp)  # [..., W, 16]
  lead = x.shape[:-2]
  x = x.reshape(-1, _FEATURES_PER_WORD)
  plus = x >= xp.asarray(np.full((16,), 2**30, np.int32))
  minus = x < xp.asarray(np.full((16,), -(2**30), np.int32))
  # Subtract in float: uint32 `-` has no TFLite builtin.
  features = plus.astype(xp.float32) - minus.astype(xp.float32)
  features = features.reshape(*lead, num_words * _FEATURES_PER_WORD)
  return features[..., :feature_size]


def project(fingerprints, feature_size: int) -> jnp.ndarray:
  """Ternary features of fingerprints: uint32/int32 [..., T] -> f32 [..., T, F].

  Word j of a fingerprint is fmix32(fmix32(fp) + (j + 1) * 0x9E3779B9);
  feature k is bit 2k minus bit 2k + 1 of the words laid end to end (word
  k // 16). Jit with feature_size static.
  """
  fingerprints = jnp.asarray(fingerprints)
  if fingerprints.dtype == jnp.int32:
    # The TFLite model receives int32; reinterpret, never convert values.
    fingerprints = jax.lax.bitcast_convert_type(fingerprints, jnp.uint32)
  elif fingerprints.dtype != jnp.uint32:
    raise TypeError(
      f"fingerprints must be uint32 or int32, got {fingerprints.dtype}"
    )
  return _ternary(fingerprints, feature_size, jnp)


def project_np(fingerprints, feature_size: int) -> np.ndarray:
  """Numpy twin of project, bit-identical: [..., T] -> f32 [..., T, F]."""
  fingerprints = np.asarray(fingerprints)
  if fingerprints.dtype == np.int32:
    fingerprints = fingerprints.view(np.uint32)
  elif fingerprints.dtype != np.uint32:
    raise TypeError(
      f"fingerprints must be uint32 or int32, got {fingerprints.dtype}"
    )
  # uint32 wrap-around is the point; numpy warns about it only for scalars.
  with np.errstate(over="ignore"):
    return np.asarray(_ternary(fingerprints, feature_size, np), np.float32)


# --- Reference-compatible mode (seq_flow_lite SequenceStringProjection). ---

_MASK64 = (1 << 64) - 1
_M1 = 0xC6A4A7935BD1E995
_M2 = 0x9E3779B97F4A7835
_TABLE = (0, 1, -1, 0)


def _mix(v: int) -> int:
  return v ^ (v >> 47)


def _load_le(block: bytes, signed_char: bool) -> int:
  """Little-endian integer of 1..8 bytes, as seq_flow_lite loads them."""
  v = 0
  for b in reversed(block):
    if signed_char and b >= 0x80:
      # `(val << 8) | buf[i]` with a signed `char`: the byte sign-extends and
      # sets every higher bit.
      b |= _MASK64 ^ 0xFF
    v = ((v << 8) | b) & _MASK64
  return v


def _murmur128(data: bytes, signed_char: bool) -> tuple[int, int]:
  a, b = (len(data) * _M1) & _MASK64, 0
  whole = len(data) - len(data) % 8
  for i in range(0, whole, 8):
    w = _load_le(data[i : i + 8], signed_char)
    a = ((a ^ ((_mix((w * _M1) & _MASK64) * _M1) & _MASK64)) * _M1) & _MASK64
    b ^= a
  if whole < len(data):
    a = ((a ^ _load_le(data[whole:], signed_char)) * _M1) & _MASK64
    b ^= a
  a = (_mix(a) * _M1) & _MASK64
  b ^= a
  a = _mix(a)
  b = (_mix((b * _M2) & _MASK64) * _M2) & _MASK64
  return a, b


def reference_features(
  token: str, feature_size: int, signed_char: bool = False
) -> np.ndarray:
  """seq_flow_lite murmur projection of one token, as given: int8 [F].

  Follows ARCHITECTURE.md section 1 (bytes read unsigned, as on ARM). The TF
  op built for x86 reads them as signed `char`; signed_char=True reproduces
  that for non-ASCII tokens (ASCII tokens agree either way).
  """
  if feature_size < 1:
    raise ValueError(f"feature_size must be >= 1, got {feature_size}")
  data = (token or "<null>").encode("utf-8", "surrogatepass")
  lo, hi = _murmur128(data, signed_char)
  codes = [lo, hi]
  while len(codes) * 32 < feature_size:
    a = (_mix(lo) * _M1) & _MASK64
    lo, hi = (_mix(((hi ^ a) * _M2) & _MASK64) * _M2) & _MASK64, _mix(a)
    codes += [lo, hi]
  return np.array(
    [
      _TABLE[(codes[k // 32] >> (2 * (k % 32))) & 3]
      for k in range(feature_size)
    ],
    dtype=np.int8,
  )
