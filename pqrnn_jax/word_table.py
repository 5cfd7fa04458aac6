"""Word tables addressed by fingerprint: the vocabulary, the lookup in the
graph, and rows started from the pre-trained piece table.

Word ids come from the fingerprints the pipeline already computes: the
vocabulary is the sorted int32 view of the fingerprints of the case-folded
training words (config.words, saved with the checkpoint's model config), and
the graph maps a fingerprint to 1 + its index there, or to UNK_ID (0).
Two words sharing a 32-bit fingerprint share a row: for W = 20k words the
chance of any collision is about W^2 / 2^33, i.e. 5 %, and then it merges
two rare words, which costs less than the UNKs a min count already makes.
"""

import collections
import logging

import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import pretrained as pretrained_lib
from pqrnn_jax import projection

UNK_ID = 0  # Unknown words, and the padding beyond each length.


def build_vocab(fingerprints_NxT, lengths_N, config):
  """Sorted int32 fingerprints of the most frequent words: tuple of W ints.

  At most config.word_vocab_size words; words seen fewer than
  config.word_min_count times are left out, so that UNK is trained on rare
  words. Ties in frequency keep the smaller fingerprint.
  """
  # A word table: only the whole-word hash (column 0 with token_features).
  fps = projection.select_columns(
    np.asarray(fingerprints_NxT), config.token_features, ()
  )
  real = np.arange(fps.shape[1])[None, :] < np.asarray(lengths_N)[:, None]
  values, counts = np.unique(
    fps[real].astype(np.uint32).view(np.int32), return_counts=True
  )
  keep = counts >= config.word_min_count
  values, counts = values[keep], counts[keep]
  top = np.argsort(-counts, kind="stable")[: config.word_vocab_size]
  return tuple(int(v) for v in np.sort(values[top]))


def vocab_strings(token_lists, config):
  """(sorted int32 fingerprints, their case-folded words) of the most
  frequent words, for a pre-trained table: every word counts (the table
  knows rare ones too), at most config.word_vocab_size."""
  counts = collections.Counter(t.casefold() for ts in token_lists for t in ts)
  top = sorted(counts, key=lambda w: (-counts[w], w))[: config.word_vocab_size]
  fps = projection.fingerprint(top).view(np.int32) if top else np.zeros(0)
  by_fp = {}
  for fp, w in zip(fps.tolist(), top, strict=True):
    by_fp.setdefault(fp, w)  # A 32-bit collision keeps the commoner word.
  order = sorted(by_fp)
  return tuple(order), tuple(by_fp[f] for f in order)


def fit(config, enc, saved=None):
  """`config` with its table's words: kept if set, else a checkpoint's
  model meta `saved`, else from the encoded training data `enc` (every
  word for a pre-trained table, vocab_strings; the frequent train words
  otherwise, build_vocab)."""
  if config.words:
    return config
  saved = saved or {}
  words, strings = saved.get("words", ()), saved.get("word_strings", ())
  if not words and config.pretrained:
    words, strings = vocab_strings(enc.tokens + enc.unlabelled_tokens, config)
  elif not words:
    words = build_vocab(enc.fingerprints, enc.lengths, config)
  return config.replace(words=tuple(words), word_strings=tuple(strings))


def word_ids(fingerprints_BxT, words) -> jnp.ndarray:
  """Fingerprints (uint32 or bitcast int32) [B, T] -> word ids int32 [B, T]."""
  fps = jnp.asarray(fingerprints_BxT)
  if fps.dtype == jnp.uint32:
    # int32 throughout: the vocabulary is sorted in int32 order and the
    # TFLite model receives int32 (uint32 compares are not builtins).
    fps = jax.lax.bitcast_convert_type(fps, jnp.int32)
  if not words:
    return jnp.full(fps.shape, UNK_ID, jnp.int32)
  vocab_W = jnp.asarray(np.asarray(words, np.int32))
  idx = jnp.minimum(_rank(vocab_W, fps), len(words) - 1)
  return jnp.where(vocab_W[idx] == fps, idx + 1, UNK_ID)


def _rank(sorted_W, x):
  """searchsorted (left) by binary lifting: how many entries are < x.

  log2(W) unrolled steps of add, compare, gather and select: no while loop
  and no int32 division (jnp.searchsorted halves with `//`, which TFLite
  cannot convert for int32).
  """
  w = sorted_W.shape[0]
  idx = jnp.zeros(x.shape, jnp.int32)
  step = 1 << (w.bit_length() - 1)  # Largest power of two <= W.
  while step:
    cand = idx + step
    probe = sorted_W[jnp.minimum(cand, w) - 1]
    idx = jnp.where((cand <= w) & (probe < x), cand, idx)
    step >>= 1
  return idx


def load_pieces(params, config, table=None):
  """The word table's rows 1..W set to each word's pooled pieces
  (pretrained.PieceTable, or `table`); UNK keeps its initialisation."""
  table = table or pretrained_lib.PieceTable()
  vecs = table.token_vectors(config.word_strings)
  known = int(np.count_nonzero(np.abs(vecs).sum(axis=1)))
  logging.info(
    "pre-trained table: %d of %d words have known pieces",
    known,
    len(config.word_strings),
  )
  emb = params["words"]["embedding"]
  emb = emb.at[1 : 1 + len(vecs)].set(jnp.asarray(vecs, emb.dtype))
  return dict(params, words=dict(params["words"], embedding=emb))
