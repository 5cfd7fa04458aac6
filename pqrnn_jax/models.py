"""The model registry: config dataclass and module of each architecture.

Every model has `encode`, `decode`, `init_cache`, `decode_step` (used by
training and decode.py) and `signatures`, `export_encode`,
`export_decode_step` (used by export.py), so nothing outside its own file
branches on the architecture. `config.model.arch` picks the entry.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from pqrnn_jax import model as model_lib
from pqrnn_jax import projection, word_table
from pqrnn_jax.baselines import lstm

REGISTRY = {
  "pqrnn": (model_lib.ModelConfig, model_lib.Seq2Seq, model_lib.summary),
  "lstm": (lstm.LSTMConfig, lstm.LSTMSeq2Seq, lstm.summary),
}


def _entry(arch: str):
  if arch not in REGISTRY:
    raise ValueError(f"model.arch={arch!r}: choose one of {sorted(REGISTRY)}")
  return REGISTRY[arch]


def from_config(model_cfg, vocab_size: int):
  """The config dataclass of `model_cfg` (ConfigDict or dict: config.model)
  and the ontology size; unknown keys are an error."""
  d = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
  cls = _entry(d.get("arch", "pqrnn"))[0]
  unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
  if unknown:
    raise ValueError(
      f"unknown model config keys for arch {cls.arch!r}: {sorted(unknown)}"
    )
  return cls(vocab_size=vocab_size, **d)


def from_meta(d: dict):
  """The config dataclass saved in a checkpoint's meta (`to_meta`)."""
  cls = _entry(d.get("arch", "pqrnn"))[0]
  names = {f.name for f in dataclasses.fields(cls)}
  return cls(**{k: v for k, v in d.items() if k in names})


def to_meta(config) -> dict:
  return dataclasses.asdict(config)


def make_model(config):
  """The flax module of `config` (its `arch`)."""
  return _entry(config.arch)[1](config)


# Jitted once per config: op by op, a model's init compiled hundreds of
# small programs (seconds, again after every jax.clear_caches).
@functools.partial(jax.jit, static_argnums=(0, 2))
def init_params(config, rng, batch: int = 1):
  """Float32 parameters for the fixed shapes of `config`."""
  shape = projection.input_shape(
    config.token_features, config.max_source_len, batch
  )
  fps = jnp.zeros(shape, jnp.uint32)
  lengths = jnp.ones((batch,), jnp.int32)
  inputs = jnp.zeros((batch, config.max_target_len), jnp.int32)
  return make_model(config).init(rng, fps, lengths, inputs)["params"]


def abstract_params(config):
  """Shapes and dtypes of `init_params`, without computing them."""
  return jax.eval_shape(lambda: init_params(config, jax.random.key(0)))


def summary(config, params) -> str:
  """One line: parameter count and sizes."""
  return _entry(config.arch)[2](config, params)


param_count = model_lib.param_count


def pretrained(config, params):
  """Parameters with any pre-trained part a config names loaded into them
  (the LSTM's `embedding_file` or `pretrained` piece table)."""
  if getattr(config, "embedding_file", ""):
    params, _ = lstm.load_embeddings(params, config)
  if config.pretrained:
    params = word_table.load_pieces(params, config)
  return params
