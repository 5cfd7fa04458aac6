"""Evaluation: decode a split and score it with MTOP's metrics.

  python -m pqrnn_jax.evaluate --workdir DIR --split test [--beam N]

prints exact match, intent accuracy, slot F1 and invalid-tree rate, overall
and per locale, and writes them as JSON into DIR.
"""

import collections
import functools
import json
import logging
import sys
from pathlib import Path

import jax
import numpy as np

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import metrics as metrics_lib
from pqrnn_jax import model as model_lib
from pqrnn_jax import projection
from pqrnn_jax import targets as targets_lib


def encode_sources(token_lists, max_len: int, token_features=()):
  """Fingerprints [N, T_max] ([N, T_max, 1 + K] with token features) and
  lengths; longer inputs are truncated to the model's maximum with a warning
  (the model cannot see past T_max)."""
  too_long = [i for i, t in enumerate(token_lists) if len(t) > max_len]
  if too_long:
    logging.warning(
      "%d input(s) longer than the model's maximum of %d tokens were "
      "truncated (first: #%d with %d tokens)",
      len(too_long),
      max_len,
      too_long[0],
      len(token_lists[too_long[0]]),
    )
  empty = [i for i, t in enumerate(token_lists) if not t]
  if empty:
    raise ValueError(f"input #{empty[0]} is empty: nothing to parse")
  fps, lengths = projection.fingerprint_batch(
    [list(t) for t in token_lists],
    max_len,
    truncate=True,
    features=token_features,
  )
  return fps, lengths, len(too_long)


@functools.lru_cache(maxsize=8)
def _decoder(model_cfg, beam_size, length_penalty, constrained, form):
  """A jitted fps, lengths, kinds -> actions function (cached by settings)."""
  model = model_lib.make_model(model_cfg)
  if beam_size <= 1:
    fn = functools.partial(
      decode_lib.greedy_decode, model, constrained=constrained, form=form
    )
  else:

    def fn(params, fps, lengths, kinds):
      actions, _ = decode_lib.beam_search(
        model,
        params,
        fps,
        lengths,
        kinds,
        beam_size=beam_size,
        length_penalty=length_penalty,
        constrained=constrained,
        form=form,
      )
      return actions

  return jax.jit(fn)


def predict_parses(
  model_cfg,
  params,
  ontology,
  token_lists,
  *,
  batch_size=64,
  beam_size=1,
  length_penalty=0.6,
  constrained=True,
  form="decoupled",
):
  """Parse strings for token lists, decoded in fixed-shape batches."""
  fps, lengths, _ = encode_sources(
    token_lists, model_cfg.max_source_len, model_cfg.token_features
  )
  kinds = decode_lib.kinds_array(ontology)
  run = _decoder(model_cfg, beam_size, length_penalty, constrained, form)
  out = []
  for start in range(0, len(token_lists), batch_size):
    f, n = fps[start : start + batch_size], lengths[start : start + batch_size]
    real = len(n)
    if real < batch_size:  # Pad to the compiled shape.
      f = np.concatenate(
        [f, np.zeros((batch_size - real,) + f.shape[1:], f.dtype)]
      )
      n = np.concatenate([n, np.ones(batch_size - real, n.dtype)])
    actions = np.asarray(run(params, f, n, kinds))[:real]
    toks = token_lists[start : start + real]
    out += [
      targets_lib.actions_to_parse(a, t, ontology)
      for a, t in zip(actions, toks, strict=True)
    ]
  return out


def evaluate_examples(model_cfg, params, ontology, examples, **kw) -> dict:
  """Decodes examples; returns metrics overall and per locale, and the
  predictions."""
  preds = predict_parses(
    model_cfg, params, ontology, [e.tokens for e in examples], **kw
  )
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
  return {
    "metrics": metrics_lib.compute_all(preds, golds),
    "per_locale": per_locale,
    "predictions": preds,
  }


def main(argv=None):
  from absl import app, flags  # noqa: F401  (flags parsed by app.run)

  from pqrnn_jax import checkpoints, input_pipeline

  f = flags.FLAGS
  flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
  flags.DEFINE_enum("split", "test", ["train", "eval", "test"], "Split.")
  flags.DEFINE_integer("beam", 1, "Beam size (1: greedy).")
  flags.DEFINE_float("length_penalty", 0.6, "GNMT alpha for beam search.")
  flags.DEFINE_bool("constrained", True, "Mask actions to valid trees.")
  flags.DEFINE_string("checkpoint", "best", "'best' or 'latest'.")
  flags.DEFINE_integer("batch_size", 64, "Decode batch size.")

  def run(_):
    try:
      model_cfg, ontology, params, config = checkpoints.load_for_inference(
        f.workdir, f.checkpoint
      )
      examples = input_pipeline.load_split(config.data, f.split)
    except FileNotFoundError as e:
      sys.exit(f"error: {e}")
    result = evaluate_examples(
      model_cfg,
      params,
      ontology,
      examples,
      batch_size=f.batch_size,
      beam_size=f.beam,
      length_penalty=f.length_penalty,
      constrained=f.constrained,
      form=config.data.form,
    )
    m = result["metrics"]
    print(
      f"{f.split}: "
      + " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in m.items()
      )
    )
    for loc, lm in result["per_locale"].items():
      print(
        f"  {loc}: exact_match={lm['exact_match']:.4f} "
        f"intent={lm['intent_accuracy']:.4f} slot_f1={lm['slot_f1']:.4f}"
      )
    name = (
      f"eval_{f.split}_beam{f.beam}"
      f"{'' if f.constrained else '_unconstrained'}.json"
    )
    out = Path(f.workdir) / name
    out.write_text(
      json.dumps({k: result[k] for k in ("metrics", "per_locale")}, indent=1)
    )
    print(f"wrote {out}")

  app.run(run, argv)


if __name__ == "__main__":
  main()
