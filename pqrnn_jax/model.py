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

from pqrnn_jax import bf16_matmul, packing, projection, qrnn, word_table
from pqrnn_jax import decoder as decoder_lib
from pqrnn_jax import dropout as dropout_lib
from pqrnn_jax import pretrained as pretrained_lib
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.pointer_head import PointerHead, lookup
from pqrnn_jax.signature_specs import export_signatures


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
  # Compute dtype ("auto": bfloat16 on GPU/TPU, float32 on CPU; see
  # compute_dtype); params, softmax and loss: float32.
  dtype: str = "float32"
  # Dense matmul operands: "float32", "bfloat16" (rounded; float32 sums and
  # outputs: bf16_matmul.py) or "auto" (bfloat16 on CPUs with bf16 dots).
  matmul: str = "float32"
  quant: str = "none"  # "none" or "int8" (AQT; see quant.py).
  # Embedding rows by a one-hot matmul (pointer_head.lookup): set by the
  # dynamic-range export, whose file then holds the tables in int8.
  one_hot_lookup: bool = False
  arch: str = "pqrnn"  # The model registry key (models.py).
  # "use-m3": each word's pooled USE-m3 pieces (pretrained.py) from a word
  # table, projected and added to the bottleneck: a teacher, not a model
  # for the device (the table is W x 512).
  pretrained: str = ""
  freeze_embeddings: bool = True  # The word table gets no update.
  word_vocab_size: int = 60000  # Most frequent words of the run's files.
  # The table's words: sorted int32 fingerprints, their case-folded words.
  words: tuple[int, ...] = dataclasses.field(default=(), repr=False)
  word_strings: tuple[str, ...] = dataclasses.field(default=(), repr=False)

  def __post_init__(self):
    if self.pooling not in qrnn.POOLING:
      raise ValueError(
        f"pooling={self.pooling!r}: choose one of {sorted(qrnn.POOLING)}"
      )
    if self.bottleneck % self.heads:
      raise ValueError(f"bottleneck {self.bottleneck} % heads {self.heads}")
    check_common(self)
    if not 0.0 <= self.word_dropout < 1.0:
      raise ValueError(f"word_dropout={self.word_dropout}: need [0, 1)")
    pretrained_lib.check(self.pretrained)
    object.__setattr__(self, "words", tuple(self.words))
    object.__setattr__(self, "word_strings", tuple(self.word_strings))

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  def fit(self, enc, saved=None) -> "ModelConfig":
    """Nothing to learn from the training data (a hashing projection),
    but a pre-trained table's words (from a checkpoint's meta `saved`, else
    from the encoded data `enc`)."""
    return word_table.fit(self, enc, saved) if self.pretrained else self

  def frozen(self) -> tuple[str, ...]:
    """Top-level parameter names that training leaves unchanged."""
    return ("words",) if self.pretrained and self.freeze_embeddings else ()

  def for_export(self) -> "ModelConfig":
    """The exported graph: float, pooling by recursive doubling (no WHILE
    op, O(log T) ops), no dropout."""
    return self.replace(
      pooling="doubling",
      quant="none",
      dropout=0.0,
      dtype="float32",
      matmul="float32",
    )


def check_common(config) -> None:
  """Checks shared by every model config; token_features becomes a tuple
  (JSON meta gives a list back; a tuple keeps the config hashable)."""
  if config.quant not in ("none", "int8"):
    raise ValueError(f"quant={config.quant!r}: choose 'none' or 'int8'")
  if config.dtype not in DTYPES:
    raise ValueError(f"dtype={config.dtype!r}: choose one of {DTYPES}")
  if config.matmul not in bf16_matmul.MATMULS:
    raise ValueError(
      f"matmul={config.matmul!r}: choose one of {bf16_matmul.MATMULS}"
    )
  object.__setattr__(
    config, "token_features", projection.check_features(config.token_features)
  )


DTYPES = ("auto", "float32", "bfloat16")


def compute_dtype(name: str):
  """The compute dtype a config names. "auto": bfloat16 on GPU and TPU,
  whose matmul units run it natively, float32 on CPU, where bfloat16
  elementwise work is emulated and slower (`matmul` rounds only the Dense
  operands there). Parameters, optimizer, softmax, pooling and loss stay
  float32 whatever it is."""
  if name == "auto":
    on_accelerator = jax.default_backend() in ("gpu", "tpu")
    return jnp.dtype(jnp.bfloat16 if on_accelerator else jnp.float32)
  return jnp.dtype(name)


def make_dense(config):
  """The Dense constructor every layer uses: float, or AQT int8."""
  dtype = compute_dtype(config.dtype)
  if config.quant == "int8":
    from pqrnn_jax import quant  # AQT import is slow: only when asked for.

    return quant.int8_dense(dtype)
  bf16 = bf16_matmul.enabled(config.matmul)
  dot = bf16_matmul.dot_general if bf16 else None
  return functools.partial(
    nn.Dense, dtype=dtype, param_dtype=jnp.float32, dot_general=dot
  )


def make_einsum(config):
  """Constructor of activation x activation einsums: None (jnp.einsum) or
  AQT int8."""
  if config.quant == "int8":
    from pqrnn_jax import quant

    return quant.int8_einsum
  return None


def shift_right(actions_BxU):
  """Decoder inputs: BOS (the EOS id) then the actions, dropping the last."""
  bos = jnp.full_like(actions_BxU[:, :1], targets_lib.EOS_ID)
  return jnp.concatenate([bos, actions_BxU[:, :-1]], axis=1)


def source_mask(lengths_B, t: int):
  """[B, T] bool: real source positions."""
  return jnp.arange(t)[None, :] < lengths_B[:, None]


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
    if c.pretrained:
      self.word_embed = nn.Embed(
        len(c.words) + 1, pretrained_lib.DIM, name="words"
      )
      self.word_proj = dense(c.bottleneck, name="word_proj")
    self.bottleneck_norm = nn.LayerNorm(name="bottleneck_norm")
    self.encoder = qrnn.BiQRNN(
      c.qrnn_hidden,
      c.qrnn_layers,
      c.qrnn_kernel,
      c.zoneout,
      c.pooling,
      dense=dense,
      dtype=compute_dtype(c.dtype),
      name="encoder",
    )
    self.head = PointerHead(
      c.vocab_size, c.bottleneck, dense, einsum, one_hot=c.one_hot_lookup
    )
    nn.share_scope(self, self.head)  # Its parameters at the top level.
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
    self.drop = dropout_lib.Dropout(c.dropout)

  def encode(
    self, fingerprints_BxT, lengths_B, deterministic=True, packed=None
  ):
    """Fingerprints (uint32 or bitcast int32) [B, T], or [B, T, 1 + K] with
    token_features -> memory [B, T, 2H], mask [B, T]. `packed`: segment ids
    of packed rows (packing.py), where `lengths_B` is not read."""
    c = self.config
    segments = None if packed is None else packed["source_segments"]
    if packed is None:
      mask_BxT = source_mask(lengths_B, fingerprints_BxT.shape[1])
    else:
      mask_BxT = segments > 0
    projection.check_input(fingerprints_BxT, c.token_features)
    p_BxTxF = projection.project(fingerprints_BxT, c.projection_size)
    if c.token_features:
      keep = None
      if c.word_dropout and not deterministic:
        keep = dropout_lib.bernoulli(
          self.make_rng("dropout"), 1.0 - c.word_dropout, mask_BxT.shape
        )
      p_BxTxF = projection.bag(p_BxTxF, keep)
    x = self.bottleneck(p_BxTxF.astype(compute_dtype(c.dtype)))
    if c.pretrained:
      x = x + self._pretrained(fingerprints_BxT)
    x = nn.relu(self.bottleneck_norm(x))
    x = self.drop(x, deterministic=deterministic)
    memory_BxTxM = self.encoder(x, mask_BxT, deterministic, segments)
    return memory_BxTxM, mask_BxT

  def _pretrained(self, fingerprints_BxT):
    """The words' table vectors, projected: [B, T, D]."""
    c = self.config
    fps = projection.select_columns(fingerprints_BxT, c.token_features, ())
    e = self.word_embed(word_table.word_ids(fps, c.words))
    if c.freeze_embeddings:
      e = jax.lax.stop_gradient(e)
    return self.word_proj(e.astype(compute_dtype(c.dtype)))

  def decode(
    self, memory_BxTxM, mask_BxT, inputs_BxU, deterministic=True, packed=None
  ):
    """Teacher forcing: decoder inputs (BOS-shifted actions) -> scores; with
    `packed`, each segment of a row decodes its own source (packing.py)."""
    u, positions = inputs_BxU.shape[1], None
    if packed is not None:
      positions = packed["target_positions"]
      mask_BxT = packing.attention_mask(packed)  # [B, U, T]
    y = self.head.embed(inputs_BxU, memory_BxTxM)
    y = y + self.position_embed(
      jnp.arange(u)[None] if positions is None else positions
    )
    y = self.drop(y, deterministic=deterministic)
    for layer in self.layers:
      kv = layer.memory_kv(memory_BxTxM)
      y = layer(y, kv, mask_BxT, deterministic, positions)
    return self.head.scores(y, self.head.keys(memory_BxTxM), mask_BxT)

  def init_cache(self, memory_BxTxM, mask_BxT):
    """Decoding state: keys/values per layer, running sums, step 0."""
    b = memory_BxTxM.shape[0]
    d = self.config.bottleneck
    return {
      "kv": [layer.memory_kv(memory_BxTxM) for layer in self.layers],
      "sums": [jnp.zeros((b, d), jnp.float32) for _ in self.layers],
      "pointer_keys": self.head.keys(memory_BxTxM),
      "step": jnp.zeros((), jnp.int32),
    }

  def step_hidden(self, cache, memory_BxTxM, mask_BxT, prev_actions_B):
    """One step up to the decoder output: (h [B, D], cache); with K
    hypotheses per source row (actions [B, K], sums [B, K, D]), [B, K, D]."""
    t, rows = cache["step"], prev_actions_B.ndim == 2
    prev = prev_actions_B if rows else prev_actions_B[:, None]
    y = self.head.embed(prev, memory_BxTxM)
    y = y if rows else y[:, 0]
    y = y + lookup(self.position_embed, t, self.config.one_hot_lookup)
    sums = []
    for layer, kv, s in zip(
      self.layers, cache["kv"], cache["sums"], strict=True
    ):
      step = layer.step_rows if rows else layer.step
      y, s = step(y, s, t, kv, mask_BxT)
      sums.append(s)
    return y, dict(cache, sums=sums, step=t + 1)

  def decode_step(self, cache, memory_BxTxM, mask_BxT, prev_actions_B):
    """One step: previous action ids [B] -> (scores [B, V + T], cache)."""
    y, cache = self.step_hidden(cache, memory_BxTxM, mask_BxT, prev_actions_B)
    scores = self.head.scores(y[:, None], cache["pointer_keys"], mask_BxT)
    return scores[:, 0], cache

  def __call__(
    self,
    fingerprints_BxT,
    lengths_B,
    inputs_BxU,
    deterministic=True,
    packed=None,
  ):
    memory, mask = self.encode(
      fingerprints_BxT, lengths_B, deterministic, packed
    )
    return self.decode(memory, mask, inputs_BxU, deterministic, packed)

  # -- What the model exports (export.py converts these, batch 1) ---------

  def signatures(self, t: int | None = None) -> dict:
    """Export signatures at source length t (default T_max): the cache is
    each layer's memory keys/values (memory_kv's layouts), the decoder state
    each layer's running sum."""
    c, t = self.config, t or self.config.max_source_len
    dk = c.bottleneck // c.heads
    kv = {"k": (1, c.heads, t, dk), "v": (1, c.heads, dk, t)}
    layers = range(c.decoder_layers)
    cache = [(f"{x}{i}", kv[x], "float32") for i in layers for x in "kv"]
    state = [(f"sum{i}", (1, c.bottleneck), "float32") for i in layers]
    return export_signatures(c, 2 * c.qrnn_hidden, cache, state, t)

  def export_encode(self, fingerprints_1xT, length_1) -> dict:
    """`encode`: named outputs of the signature."""
    memory, mask = self.encode(fingerprints_1xT, length_1)
    cache = self.init_cache(memory, mask)
    out = {"memory": memory, "pointer_keys": cache["pointer_keys"]}
    for i, (k, v) in enumerate(cache["kv"]):
      out[f"k{i}"], out[f"v{i}"] = k, v
    return out

  def export_decode_step(self, named: dict) -> dict:
    """`decode_step`: named inputs -> named outputs, scores unmasked; K
    rows of `prev_action` and `sum*` run K hypotheses at once."""
    layers = range(self.config.decoder_layers)
    mask_1xT = source_mask(named["length"], named["memory"].shape[1])
    cache = {
      "kv": [(named[f"k{i}"], named[f"v{i}"]) for i in layers],
      "sums": [named[f"sum{i}"] for i in layers],
      "pointer_keys": named["pointer_keys"],
      "step": named["step"][0],
    }
    prev = named["prev_action"]
    rows = prev.shape[0] > named["memory"].shape[0]  # K beam hypotheses.
    if rows:  # As K queries of the one source: [1, K] actions, [1, K, D].
      prev, cache["sums"] = prev[None], [s[None] for s in cache["sums"]]
    h, cache = self.step_hidden(cache, named["memory"], mask_1xT, prev)
    sym, ptr = self.head.raw_scores(
      h if rows else h[:, None], cache["pointer_keys"]
    )
    pick = (lambda x: x[0]) if rows else (lambda x: x[:, 0])
    out = {"symbol_scores": pick(sym), "pointer_scores": pick(ptr)}
    sums = [s[0] if rows else s for s in cache["sums"]]
    out.update({f"sum{i}": s for i, s in enumerate(sums)})
    return out


def param_count(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def param_breakdown(params) -> dict[str, int]:
  """Parameters per top-level block (projection has none)."""
  return {k: param_count(v) for k, v in params.items()}


def summary(config: ModelConfig, params) -> str:
  """One line: parameter count and int8 size."""
  n = param_count(params)
  return (
    f"pQRNN-MAtt: {n:,} params, {n / 1e6:.2f} MB int8 "
    f"(F={config.projection_size}"
    f"{'+' + '+'.join(config.token_features) if config.token_features else ''}"
    f" D={config.bottleneck} "
    f"H={config.qrnn_hidden}x{config.qrnn_layers} "
    f"dec={config.decoder_layers}x{config.ffn} V={config.vocab_size})"
  )
