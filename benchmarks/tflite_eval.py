"""The exported model, measured end to end: accuracy, size and latency.

  python benchmarks/tflite_eval.py --workdir runs/mtop_en --split test \
    --out benchmarks/results/tflite_eval_mtop_en.json [--limit N]

Exports the workdir's best checkpoint as float, dynamic-range and int8
.tflite files (pqrnn_jax/export.py; each variant's default signatures) and
an int8 file with `parse_<t>` only (row int8_parse: one call per parse,
the loop in the file; with --int8_beams K its `beam<K>_<t>` too), decodes
the split with each through
the numpy + ai_edge_litert driver (pqrnn_jax/tflite_runner.py, constrained
greedy, 1 thread), and the same split with jitted JAX greedy decoding: the
float model and the AQT int8 model (same parameters). Reports exact match,
intent accuracy, slot F1, invalid-tree rate, agreement with the JAX float
parses, file sizes, and latency per parse (median and p90, from tokens to
parse string, one utterance at a time) of each .tflite and of jitted JAX at
batch 1. Prints a table and writes JSON.
"""

# ruff: noqa: E402  (XLA_FLAGS must be set before jax is imported)

import os

# One CPU thread for JAX too, so both runtimes are timed alike.
os.environ.setdefault(
  "XLA_FLAGS",
  "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import time
from pathlib import Path

import jax
import numpy as np
from absl import flags

from pqrnn_jax import (
  calibration,
  checkpoints,
  cli,
  evaluate,
  export,
  inference,
  input_pipeline,
  models,
  projection,
  tflite_file,
  tflite_runner,
)
from pqrnn_jax import decode as decode_lib
from pqrnn_jax import targets as targets_lib

FLAGS = flags.FLAGS
# Exported files: <variant>[_<signature set>] (export.py's defaults if none).
FILES = ("float", "dynamic", "int8", "int8_parse")
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_enum("split", "test", ["eval", "test"], "Split decoded.")
flags.DEFINE_integer("limit", 0, "0: whole split.")
flags.DEFINE_integer(
  "calibration", calibration.DEFAULT_UTTERANCES, "int8 calibration utterances."
)
flags.DEFINE_string("checkpoint", "best", "'best' or 'latest'.")
flags.DEFINE_string("export_dir", "", "Default: WORKDIR/tflite")
flags.DEFINE_string("out", "", "Default: in export_dir.")
flags.DEFINE_list(
  "int8_beams",
  ["1"],
  "Beam sizes (1 greedy) the int8 file is decoded with by the host beam "
  "search, and files with a one-call beam<K>_<t> by that call (dynamic; "
  "int8_parse, then exported with the largest K).",
)
flags.DEFINE_list(
  "files", list(FILES), f"Exported files to measure, of {', '.join(FILES)}."
)


def _latency(seconds) -> dict:
  ms = np.asarray(seconds) * 1e3
  return {
    "median_ms": float(np.median(ms)),
    "p90_ms": float(np.percentile(ms, 90)),
    "n": len(ms),
  }


def _score(preds, examples, reference) -> dict:
  """Overall metrics; with several locales, per locale and their average
  too."""
  scored = evaluate.score(preds, examples)
  m = scored["metrics"]
  if "locale_average" in scored:
    m["per_locale"] = scored["per_locale"]
    m["locale_average"] = scored["locale_average"]
  m["agreement_with_jax_float"] = float(
    np.mean([a == b for a, b in zip(preds, reference, strict=True)])
  )
  return m


def run_tflite(path, examples, threads=1, beam=1):
  """Parses and per-parse seconds of one .tflite through the runner."""
  parser = tflite_runner.TFLiteParser(path, num_threads=threads)
  for t in parser.buckets:  # Warm-up: first invoke of each signature.
    parser.parse_tokens(["x"] * t, beam=beam)
  preds, seconds = [], []
  for e in examples:
    t0 = time.perf_counter()
    preds.append(parser.parse_tokens(e.tokens, beam=beam))
    seconds.append(time.perf_counter() - t0)
  return preds, seconds


def jax_latency(model_cfg, params, ontology, examples, form):
  """Per-parse seconds of jitted batch-1 constrained greedy decoding."""
  run = jax.jit(
    lambda p, f, n, k: decode_lib.greedy_decode(
      models.make_model(model_cfg), p, f, n, k, form=form
    )
  )
  kinds = decode_lib.kinds_array(ontology)
  t_max = model_cfg.max_source_len
  seconds = []
  for i, e in enumerate([examples[0]] + list(examples)):
    t0 = time.perf_counter()
    fps, lengths, _ = projection.featurize(
      [e.tokens], t_max, model_cfg.token_features
    )
    actions = np.asarray(run(params, fps, lengths, kinds))[0]
    targets_lib.actions_to_parse(actions, e.tokens, ontology)
    if i:  # The first call compiles.
      seconds.append(time.perf_counter() - t0)
  return seconds


def _beam_rows(result, loaded, examples, exported, beam):
  """JAX float and the exported files at beam size `beam`, scored alike:
  the int8 file by the host beam search, a file with `beam<beam>_<t>` by
  one call per parse (rows tflite_<name>_beam<beam>)."""
  model_cfg, ontology, params, config = loaded
  tokens = [e.tokens for e in examples]
  parser = inference.Parser(
    model_cfg.replace(quant="none"),
    params,
    ontology,
    form=config.data.form,
    batch_size=64,
    config=config,
  )
  ref = parser.parse_tokens(tokens, beam_size=beam)
  result[f"jax_float_beam{beam}"] = _score(ref, examples, ref)
  for name, path in exported.items():
    one_call = tflite_file.read_manifest(path).get("beam_parse") == beam
    if name != "int8" and not one_call:
      continue
    preds, seconds = run_tflite(path, examples, 1, beam)
    result[f"tflite_{name}_beam{beam}"] = dict(
      _score(preds, examples, ref), latency=_latency(seconds)
    )
    print(f"tflite_{name}_beam{beam}: done", flush=True)


def main(argv):
  cli.no_extra_args(argv)
  args = FLAGS

  model_cfg, ontology, params, config = checkpoints.load_for_inference(
    args.workdir, args.checkpoint
  )
  form = config.data.form
  examples = input_pipeline.load_split(config.data, args.split)
  if args.limit:
    examples = examples[: args.limit]
  tokens = [e.tokens for e in examples]
  out_dir = Path(args.export_dir or Path(args.workdir, "tflite"))
  result = {
    "workdir": str(args.workdir),
    "split": args.split,
    "examples": len(examples),
    "trained_with": model_cfg.quant,
    "model": models.summary(model_cfg, params),
    "params": models.param_count(params),
    "machine": cli.machine(),
  }
  jax_preds = {}
  for quant in ("none", "int8"):
    cfg = model_cfg.replace(quant=quant)
    t0 = time.time()
    parser = inference.Parser(
      cfg, params, ontology, form=form, batch_size=64, config=config
    )
    preds = parser.parse_tokens(tokens)
    jax_preds[quant] = preds
    name = "jax_float" if quant == "none" else "jax_aqt_int8"
    result[name] = _score(preds, examples, jax_preds["none"])
    print(f"{name}: {time.time() - t0:.0f}s", flush=True)

  samples = calibration.from_config(
    config, model_cfg, params, ontology, args.calibration
  )
  unknown = sorted(set(args.files) - set(FILES))
  if unknown:
    raise ValueError(f"--files {unknown}: choose from {', '.join(FILES)}")
  beams = [int(b) for b in args.int8_beams if int(b) > 1]
  exported = {}
  for name in args.files:  # int8_parse: the int8 file with parse_<t> only.
    variant, _, which = name.partition("_")
    path = exported[name] = out_dir / f"model_{name}.tflite"
    r = export.export(
      model_cfg,
      params,
      ontology,
      path,
      variant=variant,
      form=form,
      calibration=samples if variant == "int8" else None,
      signatures=which or None,
      beam=max(beams) if beams and name == "int8_parse" else None,
    )
    preds, seconds = run_tflite(path, examples)
    result[f"tflite_{name}"] = dict(
      _score(preds, examples, jax_preds["none"]),
      bytes=r["bytes"],
      latency=_latency(seconds),
      ops=r["ops"],
    )
    print(f"tflite_{name}: {r['bytes']:,} bytes", flush=True)
  for beam in beams:
    loaded = (model_cfg, ontology, params, config)
    _beam_rows(result, loaded, examples, exported, beam)

  result["jax_float"]["latency"] = _latency(
    jax_latency(
      model_cfg.replace(quant="none"), params, ontology, examples, form
    )
  )
  _print(result)
  out = Path(args.out or out_dir / f"tflite_eval_{args.split}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=1) + "\n")
  print(f"wrote {out}")


def _print(r):
  print(f"{r['model']}\n{r['split']}: {r['examples']} examples")
  print(
    f"{'':14s} {'EM':>7s} {'intent':>7s} {'slotF1':>7s} {'invalid':>7s} "
    f"{'agree':>6s} {'bytes':>11s} {'med ms':>7s} {'p90 ms':>7s}"
  )
  rows = ("jax_float", "jax_aqt_int8") + tuple(f"tflite_{v}" for v in FILES)
  rows = tuple(k for k in rows if k in r)
  rows += tuple(k for k in r if "_beam" in k)
  for k in rows:
    m = r[k]
    lat = m.get("latency", {})
    print(
      f"{k:14s} {m['exact_match']:7.4f} {m['intent_accuracy']:7.4f} "
      f"{m['slot_f1']:7.4f} {m['invalid_tree_rate']:7.4f} "
      f"{m['agreement_with_jax_float']:6.3f} {m.get('bytes', 0):11,d} "
      f"{lat.get('median_ms', float('nan')):7.2f} "
      f"{lat.get('p90_ms', float('nan')):7.2f}"
    )
    if "per_locale" in m:
      ems = " ".join(
        f"{loc} {x['exact_match']:.4f}" for loc, x in m["per_locale"].items()
      )
      print(f"{'':14s} {ems}; average {m['locale_average']['exact_match']:.4f}")


if __name__ == "__main__":
  cli.run(main)
