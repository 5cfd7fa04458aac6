"""Orbax checkpoints: save/restore training state with its JSON meta.

A checkpoint holds {step, params, opt_state} (plus `ema`, the parameter
average, when training keeps one) and JSON meta: the resolved config, the
model config and the ontology, so a workdir alone is enough to resume
training or to load a model for inference. Two managers per workdir:
checkpoints/ (the latest few, for resuming) and best/ (the one with the
highest eval exact match, chosen by orbax's `best_fn`). No TensorFlow
import here, so the inference CLIs start fast.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from pqrnn_jax import models
from pqrnn_jax import targets as targets_lib

BEST_METRIC = "exact_match"


def manager(path: Path, keep: int) -> ocp.CheckpointManager:
  """An orbax CheckpointManager on `path` keeping the last `keep` steps."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(Path(path).absolute(), options=options)


def best_manager(path: Path) -> ocp.CheckpointManager:
  """A manager keeping the one checkpoint of highest eval exact match; each
  save passes `metrics` and orbax drops the worse one."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=1,
    create=True,
    best_fn=lambda m: m[BEST_METRIC],
    best_mode="max",
  )
  return ocp.CheckpointManager(Path(path).absolute(), options=options)


def _item(state) -> dict:
  item = {
    "step": state.step,
    "params": state.params,
    "opt_state": state.opt_state,
  }
  if state.ema is not None:
    item["ema"] = state.ema
  return item


def save(mgr, state, meta: dict, metrics: dict | None = None) -> None:
  """State (step, params, optimizer, average) plus config/ontology JSON."""
  state = unreplicate(state) if _replicated(state) else state
  mgr.save(
    int(state.step),
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(_item(state)), meta=ocp.args.JsonSave(meta)
    ),
    metrics=metrics,
  )


def _replicated(state) -> bool:
  return jnp.ndim(state.step) == 1


def unreplicate(tree):
  """Drops the leading device axis of pmapped arrays."""
  # Not flax.jax_utils.unreplicate: on a subset of the local devices it
  # returns the [1, ...] shard instead of dropping the device axis.
  return jax.tree.map(lambda x: x[0], tree)


def restore_meta(ckpt_dir: Path, step=None) -> tuple[dict, int]:
  """The JSON meta (config, model, ontology) of a checkpoint, and its step."""
  with manager(ckpt_dir, 1) as mgr:
    step = mgr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {ckpt_dir}")
    r = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
  return r["meta"], step


def restore_state(mgr, step: int, state):
  """Restores into the structure of `state` (keeps optax state types)."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _item(state))
  r = mgr.restore(
    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
  )["state"]
  return state.replace(**r)


def _inference_dir(workdir: Path, which: str) -> Path:
  """best/ (falling back to checkpoints/) or, for "latest", checkpoints/."""
  if which not in ("best", "latest"):
    raise ValueError(f"checkpoint={which!r}: choose 'best' or 'latest'")
  dirs = [workdir / "best", workdir / "checkpoints"]
  for d in dirs[1:] if which == "latest" else dirs:
    if d.exists() and ocp.utils.checkpoint_steps(d.absolute()):
      return d
  raise FileNotFoundError(
    f"no checkpoint in {workdir}: train first with "
    f"`python train.py --workdir {workdir}`"
  )


def load_for_inference(workdir, which: str = "best"):
  """(model config, ontology, params, config) from a workdir's checkpoint.

  `which` is "best" (by eval exact match, falling back to the latest) or
  "latest".
  """
  d = _inference_dir(Path(workdir), which)
  meta, step = restore_meta(d, max(ocp.utils.checkpoint_steps(d.absolute())))
  ontology = targets_lib.Ontology.from_dict(meta["ontology"])
  model_cfg = models.from_meta(meta["model"])
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  item = {
    "params": jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
      models.abstract_params(model_cfg),
    )
  }
  with manager(d, 1) as mgr:
    r = mgr.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
          item=item,
          partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        )
      ),
    )
  config = ml_collections.ConfigDict(meta["config"])
  return model_cfg, ontology, r["state"]["params"], config
