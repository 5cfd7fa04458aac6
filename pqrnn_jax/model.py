"""pQRNN-MAtt: projection -> bottleneck -> biQRNN encoder -> MAtt decoder.

Dims: B batch, T source tokens, U target steps, F projection features,
D model width, H QRNN hidden per direction (memory width M = 2H),
V ontology symbols. Output scores are over V + T actions: ontology symbols,
then pointers to source positions (see targets.py).
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import decoder as decoder_lib
from pqrnn_jax import projection, qrnn
from pqrnn_jax import targets as targets_lib


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Sizes and switches of pQRNN-MAtt; `vocab_size` comes from the ontology.

  Defaults keep the model under 3.5 M parameters (int8 bytes) for MTOP's
  ontology of about 200 symbols.
  """

  vocab_size: int
  projection_size: int = 512  # F: ternary hash features per token.
  # Sub-word views hashed beside each word (projection.TOKEN_FEATURES); the
  # token's F features are the sum of its 1 + K projections.
  token_features: tuple[str, ...] = ()
  word_dropout: float = 0.0  # Training: drop the whole-word hash of a token.
  bottleneck: int = 256  # D: bottleneck and decoder width.
  qrnn_hidden: int = 128  # H per direction; memory is 2H.
  qrnn_layers: int = 2
  qrnn_kernel: int = 3
  zoneout: float = 0.25  # Layer l keeps its state with prob zoneout**(l+1).
  pooling: str = "scan"  # A key of qrnn.POOLING.
  decoder_layers: int = 2
  heads: int = 4
  ffn: int = 512
  dropout: float = 0.1
  max_source_len: int = 48  # T_max: longer inputs are refused or truncated.
  max_target_len: int = 64  # U_max: actions including EOS.
  dtype: str = "float32"  # Compute dtype; params, softmax and loss: float32.
  quant: str = "none"  # "none" or "int8" (AQT; see quant.py).
  arch: str = "pqrnn"  # "pqrnn", or "lstm": the baseline of lstm.py.
  embed_size: int = 300  # lstm: word embedding width E.
  lstm_hidden: int = 256  # lstm: encoder H per direction; D is the decoder's.
  word_vocab_size: int = 20000  # lstm: most frequent train words kept.
  word_min_count: int = 2  # lstm: rarer train words are UNK.
  embedding_file: str = ""  # lstm: word2vec/GloVe text vectors to start from.
  # lstm: sorted int32 fingerprints of the words, set by training.py.
  words: tuple[int, ...] = dataclasses.field(default=(), repr=False)

  def __post_init__(self):
    if self.pooling not in qrnn.POOLING:
      raise ValueError(
        f"pooling={self.pooling!r}: choose one of {sorted(qrnn.POOLING)}"
      )
    if self.bottleneck % self.heads:
      raise ValueError(f"bottleneck {self.bottleneck} % heads {self.heads}")
    if self.quant not in ("none", "int8"):
      raise ValueError(f"quant={self.quant!r}: choose 'none' or 'int8'")
    if self.arch not in ("pqrnn", "lstm"):
      raise ValueError(f"arch={self.arch!r}: choose 'pqrnn' or 'lstm'")
    if not 0.0 <= self.word_dropout < 1.0:
      raise ValueError(f"word_dropout={self.word_dropout}: need [0, 1)")
    # JSON meta gives a list back; a tuple keeps the config hashable.
    object.__setattr__(self, "words", tuple(self.words))
    object.__setattr__(
      self, "token_features", projection.check_features(self.token_features)
    )

  @classmethod
  def from_config(cls, model_cfg, vocab_size: int) -> "ModelConfig":
    """From an ml_collections ConfigDict (config.model) and the ontology."""
    d = dict(
      model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg
    )
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    return cls(vocab_size=vocab_size, **d)

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)


def fingerprint_shape(config: ModelConfig, batch: int) -> tuple[int, ...]:
  """[B, T_max], or [B, T_max, 1 + K] with K token_features."""
  k = len(config.token_features)
  return (batch, config.max_source_len) + ((1 + k,) if k else ())


def check_fingerprints(fingerprints, config: ModelConfig) -> None:
  """Raises (at trace time) when the fingerprints' rank or feature count do
  not match the config: a model trained with token_features needs them."""
  k = len(config.token_features)
  want = f"[B, T, {1 + k}] (word + {config.token_features})" if k else "[B, T]"
  ok = fingerprints.ndim == 3 and fingerprints.shape[2] == 1 + k
  if not (ok if k else fingerprints.ndim == 2):
    raise ValueError(
      f"fingerprints of shape {tuple(fingerprints.shape)}, the model wants "
      f"{want}: compute them with projection.fingerprint(tokens, "
      "config.token_features)"
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


def select_fingerprints(fingerprints, have: tuple, want: tuple):
  """Fingerprints computed with token features `have` -> those a model with
  features `want` reads (e.g. a KD teacher or a word table: fewer views)."""
  cols = feature_columns(have, want)
  if cols is None:
    return fingerprints
  return fingerprints[..., cols if cols == 0 else np.asarray(cols)]


def make_dense(config: ModelConfig):
  """The Dense constructor every layer uses: float, or AQT int8."""
  dtype = jnp.dtype(config.dtype)
  if config.quant == "int8":
    from pqrnn_jax import quant  # AQT import is slow: only when asked for.

    return quant.int8_dense(dtype)
  return functools.partial(nn.Dense, dtype=dtype, param_dtype=jnp.float32)


def make_einsum(config: ModelConfig):
  """Constructor of activation x activation einsums: None (jnp.einsum) or
  AQT int8."""
  if config.quant == "int8":
    from pqrnn_jax import quant

    return quant.int8_einsum
  return None


def masked_scores(sym_BxUxV, ptr_BxUxT, mask_BxT):
  """[B, U, V + T] action scores: PAD and pointers past the length -inf."""
  sym = sym_BxUxV.at[..., targets_lib.PAD_ID].set(-jnp.inf)
  ptr = jnp.where(mask_BxT[:, None, :], ptr_BxUxT, -jnp.inf)
  return jnp.concatenate([sym, ptr], axis=-1)


def embed_actions(actions_BxU, memory_BxTxM, vocab_size, symbol_embed, copy_in):
  """Decoder inputs [B, U, D]: a symbol's embedding, or for a pointer the
  encoder state at the pointed position through `copy_in`."""
  is_ptr = actions_BxU >= vocab_size
  sym = symbol_embed(jnp.where(is_ptr, 0, actions_BxU))
  pos = jnp.clip(actions_BxU - vocab_size, 0, memory_BxTxM.shape[1] - 1)
  copied = jnp.take_along_axis(memory_BxTxM, pos[..., None], axis=1)
  copied = copy_in(copied).astype(sym.dtype)
  return jnp.where(is_ptr[..., None], copied, sym)


class Seq2Seq(nn.Module):
  """pQRNN-MAtt with `encode`, `decode` (teacher forcing) and `decode_step`.

  Attributes:
    config: ModelConfig.
  """

  config: ModelConfig

  def setup(self):
    c = self.config
    dense, einsum = make_dense(c), make_einsum(c)
    self.bottleneck = dense(c.bottleneck, name="bottleneck")
    self.bottleneck_norm = nn.LayerNorm(name="bottleneck_norm")
    self.encoder = qrnn.BiQRNN(
      c.qrnn_hidden,
      c.qrnn_layers,
      c.qrnn_kernel,
      c.zoneout,
      c.pooling,
      dense=dense,
      dtype=jnp.dtype(c.dtype),
      name="encoder",
    )
    self.symbol_embed = nn.Embed(c.vocab_size, c.bottleneck, name="symbols")
    self.copy_in = dense(c.bottleneck, name="copy_in")
    self.position_embed = nn.Embed(
      c.max_target_len, c.bottleneck, name="positions"
    )
    self.layers = [
      decoder_lib.MAttLayer(
        c.bottleneck,
        c.heads,
        c.ffn,
        c.dropout,
        dense,
        einsum=einsum,
        name=f"matt{i}",
      )
      for i in range(c.decoder_layers)
    ]
    self.symbol_out = dense(c.vocab_size, name="symbol_out")
    self.pointer_q = dense(c.bottleneck, use_bias=False, name="pointer_q")
    self.pointer_k = dense(c.bottleneck, use_bias=False, name="pointer_k")
    self.pointer_einsum = (
      einsum(name="pointer_einsum") if einsum else jnp.einsum
    )
    self.drop = nn.Dropout(c.dropout)

  def encode(self, fingerprints_BxT, lengths_B, deterministic=True):
    """Fingerprints (uint32 or bitcast int32) [B, T], or [B, T, 1 + K] with
    token_features -> memory [B, T, 2H], mask [B, T]."""
    c = self.config
    t = fingerprints_BxT.shape[1]
    mask_BxT = jnp.arange(t)[None, :] < lengths_B[:, None]
    check_fingerprints(fingerprints_BxT, c)
    p_BxTxF = projection.project(fingerprints_BxT, c.projection_size)
    if c.token_features:
      keep = None
      if c.word_dropout and not deterministic:
        keep = jax.random.bernoulli(
          self.make_rng("dropout"), 1.0 - c.word_dropout, mask_BxT.shape
        )
      p_BxTxF = projection.bag(p_BxTxF, keep)
    x = self.bottleneck(p_BxTxF.astype(jnp.dtype(c.dtype)))
    x = nn.relu(self.bottleneck_norm(x))
    x = self.drop(x, deterministic=deterministic)
    memory_BxTxM = self.encoder(x, mask_BxT, deterministic)
    return memory_BxTxM, mask_BxT

  def _embed_actions(self, actions_BxU, memory_BxTxM):
    return embed_actions(
      actions_BxU,
      memory_BxTxM,
      self.config.vocab_size,
      self.symbol_embed,
      self.copy_in,
    )

  def raw_scores(self, h_BxUxD, pointer_keys_BxTxD):
    """Unmasked float32 scores: symbols [B, U, V], pointers [B, U, T]."""
    sym = self.symbol_out(h_BxUxD).astype(jnp.float32)
    q = self.pointer_q(h_BxUxD).astype(jnp.float32)
    ptr = self.pointer_einsum(
      "bud,btd->but", q, pointer_keys_BxTxD.astype(q.dtype)
    )
    return sym, ptr / jnp.sqrt(jnp.float32(q.shape[-1]))

  def _scores(self, h_BxUxD, pointer_keys_BxTxD, mask_BxT):
    """[B, U, V + T] float32 scores; PAD and padded positions are -inf."""
    sym, ptr = self.raw_scores(h_BxUxD, pointer_keys_BxTxD)
    return masked_scores(sym, ptr, mask_BxT)

  def decode(self, memory_BxTxM, mask_BxT, inputs_BxU, deterministic=True):
    """Teacher forcing: decoder inputs (BOS-shifted actions) -> scores."""
    u = inputs_BxU.shape[1]
    y = self._embed_actions(inputs_BxU, memory_BxTxM)
    y = y + self.position_embed(jnp.arange(u))[None]
    y = self.drop(y, deterministic=deterministic)
    for layer in self.layers:
      kv = layer.memory_kv(memory_BxTxM)
      y = layer(y, kv, mask_BxT, deterministic)
    return self._scores(y, self.pointer_k(memory_BxTxM), mask_BxT)

  def init_cache(self, memory_BxTxM, mask_BxT):
    """Decoding state: keys/values per layer, running sums, step 0."""
    b = memory_BxTxM.shape[0]
    d = self.config.bottleneck
    return {
      "kv": [layer.memory_kv(memory_BxTxM) for layer in self.layers],
      "sums": [jnp.zeros((b, d), jnp.float32) for _ in self.layers],
      "pointer_keys": self.pointer_k(memory_BxTxM),
      "step": jnp.zeros((), jnp.int32),
    }

  def step_hidden(self, cache, memory_BxTxM, mask_BxT, prev_actions_B):
    """One step up to the decoder output: (h [B, D], cache)."""
    t = cache["step"]
    y = self._embed_actions(prev_actions_B[:, None], memory_BxTxM)[:, 0]
    y = y + self.position_embed(t)[None]
    sums = []
    for layer, kv, s in zip(
      self.layers, cache["kv"], cache["sums"], strict=True
    ):
      y, s = layer.step(y, s, t, kv, mask_BxT)
      sums.append(s)
    return y, dict(cache, sums=sums, step=t + 1)

  def decode_step(self, cache, memory_BxTxM, mask_BxT, prev_actions_B):
    """One step: previous action ids [B] -> (scores [B, V + T], cache)."""
    y, cache = self.step_hidden(cache, memory_BxTxM, mask_BxT, prev_actions_B)
    scores = self._scores(y[:, None], cache["pointer_keys"], mask_BxT)[:, 0]
    return scores, cache

  def __call__(
    self, fingerprints_BxT, lengths_B, inputs_BxU, deterministic=True
  ):
    memory, mask = self.encode(fingerprints_BxT, lengths_B, deterministic)
    return self.decode(memory, mask, inputs_BxU, deterministic)


def make_model(config: ModelConfig) -> nn.Module:
  """Seq2Seq, or for arch "lstm" the LSTMSeq2Seq baseline (same methods)."""
  if config.arch == "lstm":
    from pqrnn_jax import lstm  # lstm imports this module.

    return lstm.LSTMSeq2Seq(config)
  return Seq2Seq(config)


def shift_right(actions_BxU):
  """Decoder inputs: BOS (the EOS id) then the actions, dropping the last."""
  bos = jnp.full_like(actions_BxU[:, :1], targets_lib.EOS_ID)
  return jnp.concatenate([bos, actions_BxU[:, :-1]], axis=1)


def init_params(config: ModelConfig, rng, batch: int = 1):
  """Float32 parameters for the fixed shapes of `config`."""
  fps = jnp.zeros(fingerprint_shape(config, batch), jnp.uint32)
  lengths = jnp.ones((batch,), jnp.int32)
  inputs = jnp.zeros((batch, config.max_target_len), jnp.int32)
  return make_model(config).init(rng, fps, lengths, inputs)["params"]


def param_count(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def param_breakdown(params) -> dict[str, int]:
  """Parameters per top-level block (projection has none)."""
  return {k: param_count(v) for k, v in params.items()}


def summary(config: ModelConfig, params) -> str:
  """One line: parameter count and int8 size."""
  if config.arch == "lstm":
    from pqrnn_jax import lstm

    return lstm.summary(config, params)
  n = param_count(params)
  return (
    f"pQRNN-MAtt: {n:,} params, {n / 1e6:.2f} MB int8 "
    f"(F={config.projection_size}"
    f"{'+' + '+'.join(config.token_features) if config.token_features else ''}"
    f" D={config.bottleneck} "
    f"H={config.qrnn_hidden}x{config.qrnn_layers} "
    f"dec={config.decoder_layers}x{config.ffn} V={config.vocab_size})"
  )
