"""Several trained models as one set of parameters: their mean (a "soup").

Members must share the model and the ontology (`ensemble.load` checks)
and, for the mean to be a model at all, one early trajectory: runs
branched from one checkpoint of a common trunk
(`--config.train.branch_from=TRUNK:STEP`, each with its own
--config.seed). MTOP en: branches of step 3k of 12k average, branches of
step 1k and independent runs do not (docs/RESULTS.md). Unlike an
ensemble, the soup costs one model at run time, so it exports to one
.tflite file like any workdir:

  python -m pqrnn_jax.soup --workdir runs/b1,runs/b2,runs/b3 \
      --out runs/soup [--checkpoint latest]

The output workdir holds best/0 (the mean, in the first member's meta,
with `soup` naming the members) and ontology.json; evaluate, export and
tflite_eval read it as a trained run.
"""

from pathlib import Path

import jax
import jax.numpy as jnp

from pqrnn_jax import checkpoints, cli, ensemble


def average(spec: str, which: str = "best"):
  """(model config, ontology, mean params, config of the first member)."""
  if len(ensemble.workdirs(spec)) < 2:
    raise ValueError(f"--workdir {spec!r}: a soup needs two workdirs or more")
  model_cfg, ontology, params_E, config = ensemble.load(spec, which)
  mean = jax.tree.map(lambda x: jnp.mean(x.astype(jnp.float32), 0), params_E)
  return model_cfg, ontology, mean, config


def write(out, spec: str, which: str = "best") -> Path:
  """Writes the mean of `spec`'s members as workdir `out`; returns out."""
  out = Path(out).absolute()
  if (out / "best").exists() or (out / "checkpoints").exists():
    raise ValueError(f"--out {out}: already holds checkpoints")
  model_cfg, ontology, params, config = average(spec, which)
  config = config.copy_and_resolve_references()
  config.train.ema_decay = 0.0  # The mean is saved as `params`.
  meta = checkpoints.meta(config, ontology, model_cfg)
  meta["soup"] = {"members": ensemble.workdirs(spec), "checkpoint": which}
  state = _State(step=jnp.int32(0), params=params)
  with checkpoints.best_manager(out / "best") as mgr:
    checkpoints.save(mgr, state, meta, {"exact_match": 0.0, "step": 0})
  ontology.save(out / "ontology.json")
  return out


class _State:
  """What checkpoints.save reads of a train state: step and params."""

  def __init__(self, step, params):
    self.step, self.params = step, params
    self.opt_state, self.ema = {}, None


def main(argv):
  cli.no_extra_args(argv)
  f = cli.FLAGS
  out = write(f.out, f.workdir, f.checkpoint)
  print(f"mean of {len(ensemble.workdirs(f.workdir))} members -> {out}")


if __name__ == "__main__":
  from absl import flags

  flags.DEFINE_string("workdir", None, "Members: a,b,c.", required=True)
  flags.DEFINE_string("out", None, "The new workdir.", required=True)
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
  cli.run(main)
