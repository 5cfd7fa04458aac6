"""Orbax checkpoints: save/restore training state with its JSON meta.

A checkpoint holds {step, params, opt_state} (plus `ema`, the parameter
average, when training keeps one) and JSON meta: the resolved config, the
model config and the ontology, so a workdir alone is enough to resume
training or to load a model for inference. Two managers per workdir:
checkpoints/ (the latest few, for resuming) and best/ (the one with the
highest eval exact match, chosen by orbax's `best_fn`). No TensorFlow
import here, so the inference CLIs start fast.
"""

import logging
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from pqrnn_jax import metrics as metrics_lib
from pqrnn_jax import models, projection
from pqrnn_jax import targets as targets_lib

BEST_METRIC = "exact_match"
# With several eval locales, best/ ranks by their unweighted average.
AVERAGE_METRIC = metrics_lib.LOCALE_AVERAGE_EXACT_MATCH


def manager(path: Path, keep: int) -> ocp.CheckpointManager:
  """An orbax CheckpointManager on `path` keeping the last `keep` steps."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(Path(path).absolute(), options=options)


def _rank(metrics: dict):
  """Sort key of best/: exact match (the locales' average if there are
  several), and on a tie the earlier step (the first checkpoint to reach a
  score keeps best/, as "save when better")."""
  return (metrics.get(AVERAGE_METRIC, metrics[BEST_METRIC]), -metrics["step"])


def best_manager(path: Path) -> ocp.CheckpointManager:
  """A manager keeping the one checkpoint of highest eval exact match; each
  save passes `metrics` (with its "step") and orbax drops the worse one."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=1, create=True, best_fn=_rank, best_mode="max"
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


def meta(config, ontology, model_cfg) -> dict:
  """What every checkpoint carries beside the state (JSON)."""
  return {
    "projection_format": projection.FORMAT_VERSION,
    "config": config.to_dict(),
    "ontology": ontology.to_dict(),
    "model": models.to_meta(model_cfg),
  }


def save(mgr, state, meta: dict, metrics: dict | None = None) -> None:
  """State (step, params, optimizer, average) plus config/ontology JSON."""
  state = unreplicate(state) if _replicated(state) else state
  # Host numpy: the same values, and what orbax writes from process 0 of a
  # multi-host job (a host-local jax.Array it refuses there).
  item = jax.device_get(_item(state))
  mgr.save(
    int(state.step),
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(item), meta=ocp.args.JsonSave(meta)
    ),
    metrics=metrics,
  )


def _replicated(state) -> bool:
  return jnp.ndim(state.step) == 1


def unreplicate(tree):
  """Device 0's copy of pmapped arrays [D, ...], as host numpy [...]."""
  # Not flax.jax_utils.unreplicate: on a subset of the local devices it
  # returns the [1, ...] shard instead of dropping the device axis. Nor
  # x[0]: that dispatches (and first compiles) one slice per leaf.
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], tree)


def read_meta(mgr, step: int) -> dict:
  """The JSON meta of one step of a manager."""
  r = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
  return r["meta"]


class CheckpointError(ValueError):
  """A checkpoint that exists but cannot be read."""


def _why(e: Exception) -> str:
  """One line of an orbax/tensorstore/JSON failure."""
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def set_aside(mgr, step: int) -> Path:
  """Moves an unreadable checkpoint out of the manager's way (so the step
  can be written again) to `<dir>/unreadable-<step>`; returns the path."""
  src = Path(mgr.directory) / str(step)
  dst = src.with_name(f"unreadable-{step}")
  n = 1
  while dst.exists():
    dst, n = src.with_name(f"unreadable-{step}.{n}"), n + 1
  src.rename(dst)
  mgr.reload()
  return dst


def restore_newest(mgr, restore):
  """restore(step) for the newest step that restores, newest first; an
  unreadable one is set aside with one warning line naming it and why.
  Raises CheckpointError when steps exist and none restores; returns
  (None, None) when there are none."""
  failures = []
  for step in sorted(mgr.all_steps(), reverse=True):
    try:
      return step, restore(step)
    except Exception as e:  # orbax raises many kinds for a damaged file.
      where = set_aside(mgr, step)
      logging.warning(
        "checkpoint %s is unreadable (%s); moved to %s, trying an older one",
        Path(mgr.directory) / str(step),
        _why(e),
        where,
      )
      failures.append(f"{step} ({_why(e)})")
  if failures:
    raise CheckpointError(
      f"no checkpoint in {mgr.directory} restores: " + "; ".join(failures)
    )
  return None, None


def branch(ckpt_dir: Path, spec: str) -> None:
  """Starts an empty checkpoints/ dir from another run's checkpoint, so the
  run resumes from it: its step, optimizer state and average (a branch of
  that run, e.g. the members of a soup, soup.py). `spec` is "WORKDIR"
  (its newest step) or "WORKDIR:STEP"; a dir that holds steps is kept."""
  if not spec or (ckpt_dir.exists() and any(ckpt_dir.iterdir())):
    return
  src, _, step = spec.rpartition(":")
  src, step = (Path(src), int(step)) if step.isdigit() else (Path(spec), None)
  steps = sorted(ocp.utils.checkpoint_steps(src / "checkpoints"))
  if not steps or (step is not None and step not in steps):
    which = "" if step is None else f" step {step}"
    raise FileNotFoundError(
      f"train.branch_from={spec!r}: no checkpoint{which} in "
      f"{src / 'checkpoints'} (steps: {', '.join(map(str, steps)) or 'none'})"
    )
  step = steps[-1] if step is None else step
  if jax.process_index() == 0:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "checkpoints" / str(step), ckpt_dir / str(step))
    logging.info("branching from %s at step %d", src, step)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("branch_from")


def restore_state(mgr, step: int, state):
  """Restores into the structure of `state` (keeps optax state types)."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _item(state))
  r = mgr.restore(
    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
  )["state"]
  return state.replace(**r)


def _inference_dir(workdir: Path, which: str) -> tuple[Path, int]:
  """(best/, falling back to checkpoints/, or for "latest" checkpoints/;
  its newest step)."""
  if which not in ("best", "latest"):
    raise ValueError(f"checkpoint={which!r}: choose 'best' or 'latest'")
  dirs = [workdir / "best", workdir / "checkpoints"]
  for d in dirs[1:] if which == "latest" else dirs:
    steps = ocp.utils.checkpoint_steps(d.absolute()) if d.exists() else []
    if steps:
      return d, max(steps)
  raise FileNotFoundError(
    f"no checkpoint in {workdir}: train first with "
    f"`python train.py --workdir {workdir}`"
  )


def load_for_inference(workdir, which: str = "best"):
  """(model config, ontology, params, config) from a workdir's checkpoint.

  `which` is "best" (by eval exact match, falling back to the latest) or
  "latest". With a parameter average (train.ema_decay > 0) the params are
  the average, in both: what the run evaluated and saved to best/. A
  checkpoint that cannot be read raises CheckpointError naming its path.
  """
  d, step = _inference_dir(Path(workdir), which)
  try:
    return _load(d, step)
  except projection.FormatError:
    raise
  except Exception as e:  # orbax raises many kinds for a damaged file.
    raise CheckpointError(
      f"cannot read checkpoint {d / str(step)}: {_why(e)}"
    ) from e


def _load(d: Path, step: int):
  """Meta, then only the parameters (no optimizer state) of one step: the
  average where the run kept one (checkpoints/ hold the raw parameters
  beside it)."""
  with manager(d, 1) as mgr:
    meta = read_meta(mgr, step)
    projection.check_format(meta.get("projection_format"), d / str(step))
    model_cfg = models.from_meta(meta["model"])
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    averaged = meta["config"].get("train", {}).get("ema_decay", 0.0) > 0
    key = "ema" if averaged else "params"
    item = {
      key: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
        models.abstract_params(model_cfg),
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
  ontology = targets_lib.Ontology.from_dict(meta["ontology"])
  config = ml_collections.ConfigDict(meta["config"])
  return model_cfg, ontology, r["state"][key], config
