"""Several trained models as one: the mean of their action probabilities.

A teacher for distillation: the members share the architecture and the
ontology (seeds or data orders of one recipe), their parameters are
stacked on a leading axis E, and `Ensemble` wraps the Flax model so that
the greedy decoder and the KD loss call it as they call one model:

  scores of the ensemble = log(mean_e softmax(scores_e))   [..., A]

A workdir argument "a,b,c" names an ensemble (`load`): `evaluate`,
`inference.Parser.from_workdir` and `distill.teacher_workdir` take one.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


def mean_log_probs(scores_ExA):
  """log of the members' mean probability, over the last axis: [..., A]."""
  logp = jax.nn.log_softmax(scores_ExA.astype(jnp.float32), axis=-1)
  return jax.nn.logsumexp(logp, axis=0) - jnp.log(float(logp.shape[0]))


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """A Flax model applied to E stacked parameter sets (vmap), its scores
  averaged as probabilities. Supports the whole-sequence call (teacher
  forcing: KD) and the methods of greedy decoding; beam search, whose
  cache is tiled per hypothesis, takes one model."""

  model: Any

  @property
  def config(self):
    return self.model.config

  def apply(self, variables, *args, method=None, **kwargs):
    params_E = variables["params"]

    def one(p, *a):
      return self.model.apply({"params": p}, *a, method=method, **kwargs)

    if method is None:
      return mean_log_probs(jax.vmap(lambda p: one(p, *args))(params_E))
    if method == "encode":
      memory_E, mask_E = jax.vmap(lambda p: one(p, *args))(params_E)
      return memory_E, mask_E[0]  # The mask is the input's, not a member's.
    if method == "init_cache":
      memory_E, mask = args
      return jax.vmap(lambda p, m: one(p, m, mask))(params_E, memory_E)
    if method == "decode_step":
      cache_E, memory_E, mask, prev = args
      scores_E, cache_E = jax.vmap(lambda p, c, m: one(p, c, m, mask, prev))(
        params_E, cache_E, memory_E
      )
      return mean_log_probs(scores_E), cache_E
    raise ValueError(f"an ensemble cannot run method {method!r}")


def workdirs(spec: str) -> list[str]:
  """The workdirs of a spec "a" or "a,b,c"."""
  return [w for w in str(spec).split(",") if w]


def wrap(model, members: int):
  """The model itself for one member, else its `Ensemble`."""
  return Ensemble(model) if members > 1 else model


# Model config fields that members may differ in: the JAX matmul precision
# and what only training reads (dropout rates).
FREE_FIELDS = ("matmul", "dropout", "word_dropout", "zoneout")


def same_model(cfg, first) -> bool:
  """Whether `cfg` is `first`'s model, FREE_FIELDS aside."""
  names = {f.name for f in dataclasses.fields(cfg)}
  free = {k: getattr(first, k) for k in FREE_FIELDS if k in names}
  return type(cfg) is type(first) and dataclasses.replace(cfg, **free) == first


def load(spec, which: str = "best"):
  """(model config, ontology, params, config of the first) of a workdir,
  or of the ensemble "a,b,c" with params stacked [E, ...]; every member
  must have the first's model (`same_model`) and ontology."""
  from pqrnn_jax import checkpoints

  dirs = workdirs(spec)
  if len(dirs) == 1:
    return checkpoints.load_for_inference(spec, which)
  loaded = [checkpoints.load_for_inference(w, which) for w in dirs]
  model_cfg, ontology, _, config = loaded[0]
  for w, (cfg, ont, _, _) in zip(dirs[1:], loaded[1:], strict=True):
    if not same_model(cfg, model_cfg) or ont != ontology:
      what = "ontology" if same_model(cfg, model_cfg) else "model"
      raise ValueError(
        f"ensemble member {w}: its {what} differs from {dirs[0]}'s"
      )
  params = jax.tree.map(lambda *x: jnp.stack(x), *(p for _, _, p, _ in loaded))
  return model_cfg, ontology, params, config
