"""Orbax checkpoints: save/restore training state with its JSON meta.

A checkpoint holds {step, params, opt_state} plus JSON meta: the resolved
config, the model config and the ontology, so a workdir alone is enough to
resume training or to load a model for inference. No TensorFlow import here,
so the inference CLIs start fast.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from pqrnn_jax import model as model_lib
from pqrnn_jax import targets as targets_lib


def manager(path: Path, keep: int) -> ocp.CheckpointManager:
  """An orbax CheckpointManager on `path` keeping the last `keep` steps."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(path.absolute(), options=options)


def save(mgr, state, meta: dict) -> None:
  """State (step, params, optimizer) plus config/ontology JSON."""
  state = unreplicate(state) if _replicated(state) else state
  item = {
    "step": state.step,
    "params": state.params,
    "opt_state": state.opt_state,
  }
  mgr.save(
    int(state.step),
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(item), meta=ocp.args.JsonSave(meta)
    ),
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
  item = {
    "step": state.step,
    "params": state.params,
    "opt_state": state.opt_state,
  }
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, item)
  r = mgr.restore(
    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
  )["state"]
  return state.replace(
    step=r["step"], params=r["params"], opt_state=r["opt_state"]
  )


def load_for_inference(workdir, which: str = "best"):
  """(model config, ontology, params, config) from a workdir's checkpoint.

  `which` is "best" (by eval exact match, falling back to the latest) or
  "latest".
  """
  workdir = Path(workdir)
  dirs = [workdir / "best", workdir / "checkpoints"]
  if which == "latest":
    dirs = dirs[1:]
  for d in dirs:
    if d.exists() and ocp.utils.checkpoint_steps(d.absolute()):
      break
  else:
    raise FileNotFoundError(
      f"no checkpoint in {workdir}: train first with "
      f"`python train.py --workdir {workdir}`"
    )
  meta, step = restore_meta(d)
  ontology = targets_lib.Ontology.from_dict(meta["ontology"])
  model_cfg = model_lib.ModelConfig(**meta["model"])
  with manager(d, 1) as mgr:
    abstract = jax.eval_shape(
      lambda: model_lib.init_params(model_cfg, jax.random.key(0))
    )
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    item = {
      "params": jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), abstract
      )
    }
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
