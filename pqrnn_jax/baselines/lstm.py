"""Conventional seq2seq baseline: word embeddings -> BiLSTM -> LSTM decoder
with Luong attention and the pointer outputs of pQRNN-MAtt.

Dims: B batch, T source tokens, U target steps, E word embedding, H LSTM
hidden per direction (memory width M = 2H), D decoder width
(config.bottleneck), W words in the vocabulary, V ontology symbols. Scores
are over V + T actions exactly as in model.Seq2Seq (the same
pointer_head.PointerHead), so decoding, training, evaluation and export run
it unchanged. Word ids come from the fingerprints (word_table.py).
"""

import dataclasses
import functools
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import decoder as decoder_lib
from pqrnn_jax import dropout as dropout_lib
from pqrnn_jax import model as model_lib
from pqrnn_jax import pretrained as pretrained_lib
from pqrnn_jax import projection, signature_specs, word_table
from pqrnn_jax.pointer_head import PointerHead


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
  """Sizes of the LSTM baseline; `vocab_size` comes from the ontology and
  `words` from the training data (build_vocab)."""

  vocab_size: int
  token_features: tuple[str, ...] = ()  # Inputs' columns; reads column 0.
  embed_size: int = 300  # E: word embedding width.
  lstm_hidden: int = 256  # Encoder H per direction; D is the decoder's.
  bottleneck: int = 512  # D: the decoder LSTM and its embeddings.
  word_vocab_size: int = 20000  # Most frequent train words kept (+UNK).
  word_min_count: int = 2  # Rarer train words are UNK.
  embedding_file: str = ""  # word2vec/GloVe text vectors to start from.
  # "use-m3": the word table starts from USE multilingual v3's pieces,
  # pooled per word (pretrained.py); embed_size must be 512.
  pretrained: str = ""
  freeze_embeddings: bool = False  # The word table gets no update.
  dropout: float = 0.3
  max_source_len: int = 48
  max_target_len: int = 64
  dtype: str = "float32"
  matmul: str = "float32"  # As ModelConfig's: Dense matmul operands.
  quant: str = "none"  # "int8": AQT on the Dense layers; cells stay float.
  one_hot_lookup: bool = False  # As ModelConfig's (dynamic export).
  unroll: bool = False  # Unroll the time loops (export: no WHILE op).
  arch: str = "lstm"  # The model registry key (models.py).
  # Sorted int32 fingerprints of the words, set from the training data.
  words: tuple[int, ...] = dataclasses.field(default=(), repr=False)
  # With a pre-trained table: the (case-folded) word of each fingerprint.
  word_strings: tuple[str, ...] = dataclasses.field(default=(), repr=False)

  def __post_init__(self):
    model_lib.check_common(self)
    object.__setattr__(self, "words", tuple(self.words))
    object.__setattr__(self, "word_strings", tuple(self.word_strings))
    pretrained_lib.check(self.pretrained)
    if self.pretrained and self.embed_size != pretrained_lib.DIM:
      raise ValueError(
        f"model.pretrained={self.pretrained!r} needs model.embed_size="
        f"{pretrained_lib.DIM}, not {self.embed_size}"
      )

  def frozen(self) -> tuple[str, ...]:
    """Top-level parameter names that training leaves unchanged."""
    return ("words",) if self.freeze_embeddings else ()

  def replace(self, **kw) -> "LSTMConfig":
    return dataclasses.replace(self, **kw)

  def for_export(self) -> "LSTMConfig":
    return self.replace(
      unroll=True, quant="none", dropout=0.0, dtype="float32", matmul="float32"
    )

  def fit(self, enc, saved=None) -> "LSTMConfig":
    """With the word vocabulary of a checkpoint's model meta `saved`, else
    of encoded training data `enc` (kept if already set)."""
    return word_table.fit(self, enc, saved)


class BiLSTM(nn.Module):
  """Forward and backward LSTM over each sequence's real steps.

  Attributes:
    hidden: H per direction.
    dtype: compute dtype (parameters stay float32).
    unroll: unroll the time loops (export: TFLite full int8 cannot take a
      WHILE op).
  """

  hidden: int
  dtype: jnp.dtype = jnp.float32
  unroll: bool = False

  @nn.compact
  def __call__(self, x_BxTxE, lengths_B, mask_BxT):
    """[B, T, E] -> [B, T, 2H]; padded steps are 0."""
    cell = functools.partial(
      nn.OptimizedLSTMCell,
      self.hidden,
      dtype=self.dtype,
      param_dtype=jnp.float32,
    )
    unroll = True if self.unroll else 1
    fwd = nn.RNN(cell(name="fwd"), unroll=unroll)(
      x_BxTxE, seq_lengths=lengths_B
    )
    # seq_lengths makes the backward pass start at each sequence's last real
    # token; keep_order puts its outputs back in source order.
    bwd = nn.RNN(
      cell(name="bwd"), reverse=True, keep_order=True, unroll=unroll
    )(x_BxTxE, seq_lengths=lengths_B)
    h_BxTxM = jnp.concatenate([fwd, bwd], axis=-1)
    # nn.RNN leaves garbage beyond the length: zero it, as copies read it.
    return jnp.where(mask_BxT[..., None], h_BxTxM, 0.0)


class LSTMSeq2Seq(nn.Module):
  """BiLSTM encoder, attention LSTM decoder; the interface of Seq2Seq.

  Decoder (Luong et al. 2015, global "general" attention, no input
  feeding, so teacher forcing runs the LSTM as one scan):
    h_t = LSTM(h_{t-1}, y_t); c_t = softmax(h_t W_a M^T / sqrt(M)) M
    a_t = tanh(W_c [c_t; h_t]); scores: PointerHead.scores(a_t).
  Dense layers follow config.quant; the LSTM cells stay float.

  Attributes:
    config: LSTMConfig with `words` set.
  """

  config: LSTMConfig

  def setup(self):
    c = self.config
    dense = model_lib.make_dense(c)
    dtype = model_lib.compute_dtype(c.dtype)
    self.word_embed = nn.Embed(
      len(c.words) + 1, c.embed_size, dtype=dtype, name="words"
    )
    self.encoder = BiLSTM(c.lstm_hidden, dtype, c.unroll, name="encoder")
    # The pointer product stays float (jnp.einsum) under int8 too.
    self.head = PointerHead(
      c.vocab_size, c.bottleneck, dense, None, dtype, c.one_hot_lookup
    )
    nn.share_scope(self, self.head)  # Its parameters at the top level.
    self.cell = nn.OptimizedLSTMCell(
      c.bottleneck, dtype=dtype, param_dtype=jnp.float32, name="decoder"
    )
    # The same cell, scanned over U steps for teacher forcing.
    self.rnn = nn.RNN(self.cell)
    self.attn_q = dense(2 * c.lstm_hidden, use_bias=False, name="attn_q")
    self.combine = dense(c.bottleneck, name="combine")
    self.drop = dropout_lib.Dropout(c.dropout)

  def encode(self, fingerprints_BxT, lengths_B, deterministic=True):
    """Fingerprints (uint32 or bitcast int32) -> memory [B, T, 2H], mask."""
    mask_BxT = model_lib.source_mask(lengths_B, fingerprints_BxT.shape[1])
    projection.check_input(fingerprints_BxT, self.config.token_features)
    fingerprints_BxT = projection.select_columns(  # Whole words only.
      fingerprints_BxT, self.config.token_features, ()
    )
    ids_BxT = word_table.word_ids(fingerprints_BxT, self.config.words)
    x = self.word_embed(ids_BxT)
    if self.config.freeze_embeddings:
      x = jax.lax.stop_gradient(x)
    x = self.drop(x, deterministic=deterministic)
    memory_BxTxM = self.encoder(x, lengths_B, mask_BxT)
    return memory_BxTxM, mask_BxT

  def _attend(self, h_BxUxD, memory_BxTxM, mask_BxT, det):
    """Attention and combination: the output state a [B, U, D]."""
    q = self.attn_q(h_BxUxD).astype(jnp.float32)
    m = memory_BxTxM.astype(jnp.float32)
    logits_BxUxT = jnp.einsum("bum,btm->but", q, m) / jnp.sqrt(
      jnp.float32(m.shape[-1])
    )
    w = decoder_lib.masked_softmax(logits_BxUxT, mask_BxT[:, None, :])
    ctx_BxUxM = jnp.einsum("but,btm->bum", w, m).astype(h_BxUxD.dtype)
    a = jnp.tanh(self.combine(jnp.concatenate([ctx_BxUxM, h_BxUxD], -1)))
    return self.drop(a, deterministic=det)

  def decode(self, memory_BxTxM, mask_BxT, inputs_BxU, deterministic=True):
    """Teacher forcing: decoder inputs (BOS-shifted actions) -> scores."""
    y = self.head.embed(inputs_BxU, memory_BxTxM)
    y = self.drop(y, deterministic=deterministic)
    h_BxUxD = self.rnn(y)
    keys = self.head.keys(memory_BxTxM)
    a = self._attend(h_BxUxD, memory_BxTxM, mask_BxT, deterministic)
    return self.head.scores(a, keys, mask_BxT)

  def init_cache(self, memory_BxTxM, mask_BxT):
    """Decoding state: LSTM (c, h) at zero, pointer keys, step 0."""
    zeros = jnp.zeros((memory_BxTxM.shape[0], self.config.bottleneck))
    return {
      "lstm": (zeros, zeros),
      "pointer_keys": self.head.keys(memory_BxTxM),
      "step": jnp.zeros((), jnp.int32),
    }

  def _step(self, carry, memory_BxTxM, mask_BxT, prev_B):
    """(c, h), previous actions [B] -> output state a [B, 1, D], (c, h)."""
    y = self.head.embed(prev_B[:, None], memory_BxTxM)[:, 0]
    carry, h_BxD = self.cell(carry, y)
    return self._attend(h_BxD[:, None], memory_BxTxM, mask_BxT, True), carry

  def decode_step(self, cache, memory_BxTxM, mask_BxT, prev_actions_B):
    """One step: previous action ids [B] -> (scores [B, V + T], cache)."""
    a, carry = self._step(cache["lstm"], memory_BxTxM, mask_BxT, prev_actions_B)
    scores = self.head.scores(a, cache["pointer_keys"], mask_BxT)[:, 0]
    return scores, dict(cache, lstm=carry, step=cache["step"] + 1)

  def __call__(
    self, fingerprints_BxT, lengths_B, inputs_BxU, deterministic=True
  ):
    memory, mask = self.encode(fingerprints_BxT, lengths_B, deterministic)
    return self.decode(memory, mask, inputs_BxU, deterministic)

  # -- What the model exports (export.py converts these, batch 1) ---------

  def signatures(self, t: int | None = None) -> dict:
    """Export signatures at source length t (default T_max): no cache
    beyond memory and pointer keys; the decoder state is the LSTM's (c, h)."""
    c = self.config
    t = t or c.max_source_len
    state = [(n, (1, c.bottleneck), "float32") for n in ("lstm_c", "lstm_h")]
    return signature_specs.export_signatures(c, 2 * c.lstm_hidden, [], state, t)

  def export_encode(self, fingerprints_1xT, length_1) -> dict:
    memory, mask = self.encode(fingerprints_1xT, length_1)
    return {"memory": memory, "pointer_keys": self.head.keys(memory)}

  def export_decode_step(self, named: dict) -> dict:
    mask_1xT = model_lib.source_mask(named["length"], named["memory"].shape[1])
    carry = (named["lstm_c"], named["lstm_h"])
    a, (c_1xD, h_1xD) = self._step(
      carry, named["memory"], mask_1xT, named["prev_action"]
    )
    sym, ptr = self.head.raw_scores(a, named["pointer_keys"])
    return {
      "symbol_scores": sym[:, 0],
      "pointer_scores": ptr[:, 0],
      "lstm_c": c_1xD,
      "lstm_h": h_1xD,
    }


def load_embeddings(params, config: LSTMConfig, path=None):
  """Copies pre-trained vectors into the word table: (params, rows found).

  `path` (default config.embedding_file) is word2vec/GloVe text: one
  `word v1 ... vE` per line, an optional "count E" header. Words are
  case-folded like the fingerprints; the first line of a word wins, which in
  frequency-sorted files is its most common casing. Other rows keep their
  random initialisation.
  """
  path = path or config.embedding_file
  vocab = np.asarray(config.words, np.int32)
  rows, vecs = {}, []
  with open(path, encoding="utf-8", errors="replace") as f:
    for n, line in enumerate(f):
      if n == 0 and len(line.split()) == 2:
        continue  # The word2vec header "count E".
      word, _, rest = line.rstrip("\n").partition(" ")
      fp = projection.fingerprint([word])[0:1].view(np.int32)[0]
      i = np.searchsorted(vocab, fp)
      # Parse the numbers only for vocabulary words: GloVe has 400k lines.
      if i == len(vocab) or vocab[i] != fp or i + 1 in rows:
        continue
      vec = np.array(rest.split(), np.float32)
      if vec.shape != (config.embed_size,):
        raise ValueError(
          f"{path}:{n + 1}: {vec.size} values for {word!r}, but "
          f"model.embed_size is {config.embed_size}"
        )
      rows[i + 1] = len(vecs)
      vecs.append(vec)
  logging.info(
    "embeddings: %d of %d vocabulary words found in %s",
    len(rows),
    len(vocab),
    path,
  )
  if not rows:
    return params, 0
  table = params["words"]["embedding"]
  table = table.at[np.fromiter(rows, np.int32)].set(np.stack(vecs))
  return dict(params, words=dict(params["words"], embedding=table)), len(rows)


def summary(config: LSTMConfig, params) -> str:
  """One line: parameter count, float32 and int8 size."""
  n = model_lib.param_count(params)
  return (
    f"LSTM seq2seq: {n:,} params, {4 * n / 1e6:.2f} MB float32, "
    f"{n / 1e6:.2f} MB int8 (words={len(config.words)}+UNK "
    f"E={config.embed_size} H={config.lstm_hidden}x2 "
    f"D={config.bottleneck} V={config.vocab_size})"
  )
