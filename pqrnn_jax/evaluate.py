"""Evaluation: decode a split and score it with MTOP's metrics.

  python -m pqrnn_jax.evaluate --workdir DIR --split test [--beam N]
  python -m pqrnn_jax.evaluate --workdir DIR --file top/test.tsv --form full

prints exact match, intent accuracy, slot F1 and invalid-tree rate, overall
and per locale, and writes them as JSON into DIR.
"""

import collections
import json
from pathlib import Path

from pqrnn_jax import metrics as metrics_lib

AVERAGE_METRIC = metrics_lib.LOCALE_AVERAGE_EXACT_MATCH


def score(preds, examples) -> dict:
  """Metrics of predictions against examples' gold parses, overall and per
  locale."""
  golds = [e.parse for e in examples]
  by_locale = collections.defaultdict(list)
  for i, e in enumerate(examples):
    by_locale[e.locale or "unknown"].append(i)
  per_locale = {
    loc: metrics_lib.compute_all(
      [preds[i] for i in idx], [golds[i] for i in idx]
    )
    for loc, idx in sorted(by_locale.items())
  }
  out = {
    "metrics": metrics_lib.compute_all(preds, golds),
    "per_locale": per_locale,
  }
  if len(per_locale) > 1:
    out["locale_average"] = locale_average(per_locale)
  return out


def locale_average(per_locale: dict) -> dict:
  """Unweighted mean over locales of each float metric (MTOP's average)."""
  first = next(iter(per_locale.values()))
  keys = [k for k, v in first.items() if isinstance(v, float)]
  n = len(per_locale)
  return {k: sum(m[k] for m in per_locale.values()) / n for k in keys}


def flat_locale_metrics(result: dict) -> dict:
  """Scalars to log beside the overall metrics, with several locales:
  exact match per locale and their average (AVERAGE_METRIC)."""
  if "locale_average" not in result:
    return {}
  out = {
    f"exact_match_{loc}": m["exact_match"]
    for loc, m in result["per_locale"].items()
  }
  out[AVERAGE_METRIC] = result["locale_average"]["exact_match"]
  return out


def evaluate_examples(parser, examples, **kw) -> dict:
  """Decodes examples with an inference.Parser (keywords as its
  `parse_tokens`); metrics overall and per locale, and the predictions."""
  preds = parser.parse_tokens([e.tokens for e in examples], **kw)
  return dict(score(preds, examples), predictions=preds)


def report(split: str, result: dict) -> str:
  """Lines to print: overall metrics, then one line per locale."""
  m = result["metrics"]
  lines = [
    f"{split}: "
    + " ".join(
      f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
      for k, v in m.items()
    )
  ]
  rows = dict(result["per_locale"])
  if "locale_average" in result:
    rows[f"average of {len(rows)}"] = result["locale_average"]
  for loc, lm in rows.items():
    lines.append(
      f"  {loc}: exact_match={lm['exact_match']:.4f} "
      f"intent={lm['intent_accuracy']:.4f} slot_f1={lm['slot_f1']:.4f}"
    )
  return "\n".join(lines)


def _examples(f, parser):
  """(examples, name): --file in any readers format, else --split."""
  from pqrnn_jax import input_pipeline
  from pqrnn_jax.data import readers

  if f.file:
    # Folder and stem: "xsemplr_parallel_test", never a split's "test".
    path = Path(f.file)
    return readers.read_examples(path), f"{path.parent.name}_{path.stem}"
  return input_pipeline.load_split(parser.config.data, f.split), f.split


def main(argv):
  from pqrnn_jax import cli, ensemble, inference

  f = cli.FLAGS
  cli.no_extra_args(argv)
  parser = inference.Parser.from_workdir(
    f.workdir, f.checkpoint, batch_size=f.batch_size
  )
  if f.form:  # A dataset of another form than the workdir's.
    parser.form = f.form
  examples, name = _examples(f, parser)
  result = evaluate_examples(
    parser,
    examples,
    beam_size=f.beam,
    length_penalty=f.length_penalty,
    constrained=f.constrained,
  )
  print(report(name, result))
  # An ensemble "a,b,c" writes beside its first member.
  tag = f"_ensemble{parser.members}" if parser.members > 1 else ""
  out = Path(ensemble.workdirs(f.workdir)[0]) / (
    f"eval_{name}_beam{f.beam}{'' if f.constrained else '_unconstrained'}"
    f"{tag}.json"
  )
  out.write_text(
    json.dumps(
      {k: v for k, v in result.items() if k != "predictions"}, indent=1
    )
  )
  print(f"wrote {out}")


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string(
    "workdir", None, "Training workdir; a,b,c: their ensemble.", required=True
  )
  flags.DEFINE_enum("split", "test", ["train", "eval", "test"], "Split.")
  flags.DEFINE_string(
    "file", None, "Score this file instead (any readers format)."
  )
  flags.DEFINE_enum(
    "form", None, ["decoupled", "full"], "The file's form, if not the model's."
  )
  flags.DEFINE_integer("beam", 1, "Beam size (1: greedy).")
  flags.DEFINE_float("length_penalty", 0.6, "GNMT alpha for beam search.")
  flags.DEFINE_bool("constrained", True, "Mask actions to valid trees.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
  flags.DEFINE_integer("batch_size", 64, "Decode batch size.")
  cli.run(main)
