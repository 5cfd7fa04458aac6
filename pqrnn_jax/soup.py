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
      --out runs/soup [--checkpoint latest] [--greedy]

--greedy keeps only the members that help on the eval split (a "greedy
soup", Wortsman et al. 2022): members in order of their own eval exact
match, each added if the soup with it scores at least as well without.

The output workdir holds best/0 (the mean, in the first member's meta,
with `soup` naming the members) and ontology.json; evaluate, export and
tflite_eval read it as a trained run.
"""

from pathlib import Path

import jax
import jax.numpy as jnp

from pqrnn_jax import checkpoints, cli, ensemble


def _mean(params_E, idx):
  """The mean over the members idx of stacked params [E, ...]."""
  take = jnp.asarray(list(idx))
  return jax.tree.map(
    lambda x: jnp.mean(x[take].astype(jnp.float32), 0), params_E
  )


def select(n: int, em, log=print):
  """(chosen indices, steps): the greedy soup of n members, where em(idx)
  scores the mean of members idx. Members in order of their own score;
  each is added if the soup with it scores at least the soup without.
  Steps: dicts of the members tried, their score and whether kept."""
  steps = []

  def record(idx, value, kept):
    steps.append({"members": list(idx), "eval": value, "kept": kept})
    log(f"{'kept' if kept else 'left'} {idx}: eval exact match {value:.4f}")

  alone = {i: em([i]) for i in range(n)}
  order = sorted(alone, key=lambda i: -alone[i])  # Stable: ties by index.
  for i in range(n):
    record([i], alone[i], i == order[0])
  chosen, best = order[:1], alone[order[0]]
  for i in order[1:]:
    value = em(chosen + [i])
    record(chosen + [i], value, value >= best)
    if value >= best:
      chosen, best = chosen + [i], value
  return chosen, steps


def _eval_score(model_cfg, ontology, params_E, config):
  """em(idx) for `select`: the exact match of the mean of members idx on
  the eval split (with several locales their unweighted average, as best/
  ranks)."""
  from pqrnn_jax import evaluate, inference, input_pipeline

  examples = input_pipeline.load_split(config.data, "eval")

  def em(idx):
    parser = inference.Parser(
      model_cfg,
      _mean(params_E, idx),
      ontology,
      form=config.data.form,
      batch_size=128,
    )
    r = evaluate.evaluate_examples(parser, examples)
    return r.get("locale_average", r["metrics"])["exact_match"]

  return em


def write(out, spec: str, which: str = "best", pick=False) -> Path:
  """Writes the mean of `spec`'s members (with pick, of those `select`
  keeps on eval) as workdir `out`; returns out."""
  out = Path(out).absolute()
  if (out / "best").exists() or (out / "checkpoints").exists():
    raise ValueError(f"--out {out}: already holds checkpoints")
  names = ensemble.workdirs(spec)
  if len(names) < 2:
    raise ValueError(f"--workdir {spec!r}: a soup needs two workdirs or more")
  model_cfg, ontology, params_E, config = ensemble.load(spec, which)
  chosen, steps = range(len(names)), None
  if pick:
    em = _eval_score(model_cfg, ontology, params_E, config)
    chosen, steps = select(len(names), em)
    if len(chosen) < 2:
      raise ValueError(f"--greedy: no member improves on {spec!r}'s best")
    for st in steps:
      st["members"] = [names[i] for i in st["members"]]
  config = config.copy_and_resolve_references()
  config.train.ema_decay = 0.0  # The mean is saved as `params`.
  meta = checkpoints.meta(config, ontology, model_cfg)
  meta["soup"] = {"members": [names[i] for i in chosen], "checkpoint": which}
  if steps is not None:
    meta["soup"]["greedy_on_eval"] = steps
  state = _State(step=jnp.int32(0), params=_mean(params_E, chosen))
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
  out = write(f.out, f.workdir, f.checkpoint, pick=f.greedy)
  print(f"soup -> {out}")


if __name__ == "__main__":
  from absl import flags

  flags.DEFINE_string("workdir", None, "Members: a,b,c.", required=True)
  flags.DEFINE_string("out", None, "The new workdir.", required=True)
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
  flags.DEFINE_bool("greedy", False, "Keep the members that help on eval.")
  cli.run(main)
