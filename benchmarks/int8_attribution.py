"""Where the int8 file loses to float: each half of the graph in int8 alone.

  python benchmarks/int8_attribution.py --workdir runs/mtop_en --split eval \
    --out benchmarks/results/int8_attribution_mtop_en.json

Decodes the split (constrained greedy, host loop) four ways, each half of
the on-device graph taken from the float or the int8 file of the same
checkpoint (WORKDIR/tflite/model_{float,int8}.tflite, exported first if
missing): encode from one file, decode_step from the other. The encoder's
outputs are float tensors in both files, so the halves plug into each
other. Reports exact match and agreement with the float file for each
pair, and, per half, the error of its int8 outputs on the same inputs
(relative RMS: RMS(int8 - float) / RMS(float), on the split's first
utterances, each step fed the float file's own inputs).
"""

import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from pqrnn_jax import calibration as calibration_lib  # noqa: E402
from pqrnn_jax import (  # noqa: E402
  checkpoints,
  cli,
  evaluate,
  export,
  input_pipeline,
  tflite_runner,
)
from pqrnn_jax import targets as targets_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_enum("split", "eval", ["eval", "test"], "Split decoded.")
flags.DEFINE_integer("limit", 0, "0: whole split.")
flags.DEFINE_integer("error_utterances", 200, "Utterances for the RMS.")
flags.DEFINE_integer(
  "calibration",
  calibration_lib.DEFAULT_UTTERANCES,
  "int8 calibration utterances.",
)
flags.DEFINE_string("out", "", "JSON path; default: print only.")
flags.DEFINE_list(
  "float_ops",
  [],
  "Also int8 files with these TFLite ops left in float, one file per "
  "entry; '+' joins ops in one entry (e.g. SOFTMAX,MUL+ADD).",
)

HALVES = ("encode", "decode_step")


def _files(workdir, calibration: int) -> dict:
  """{variant: path} of the float and int8 files, exported if missing (an
  int8 file of another calibration size than the default has its own)."""
  out = {}
  for variant in ("float", "int8"):
    name = f"model_{variant}"
    if variant == "int8" and calibration != calibration_lib.DEFAULT_UTTERANCES:
      name += f"_cal{calibration}"
    path = Path(workdir, "tflite", f"{name}.tflite")
    if not path.exists():
      export.export_workdir(
        workdir, path, variant, calibration, signatures="steps"
      )
    out[variant] = path
  return out


def mixed_parser(paths: dict, encode_from: str, step_from: str):
  """A host-loop parser whose encode_<t> and decode_step come from the
  given variants' files."""
  parsers = {
    v: tflite_runner.TFLiteParser(p, host_loop=True) for v, p in paths.items()
  }
  main = parsers[step_from]
  enc = parsers[encode_from]
  for t in main.buckets:
    name = enc._encode_names[t]
    main._sigs[t] = tflite_runner.Signature(enc.interpreter, name)
  main._keep = parsers  # The other interpreter lives as long as this one.
  return main


def decode_all(parser, examples) -> list[str]:
  out = []
  for e in examples:
    fps, n = parser.fingerprints(e.tokens)
    actions = parser.host_decode(fps, n)
    out.append(targets_lib.actions_to_parse(actions, e.tokens, parser.ontology))
  return out


def _rel_rms(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.sqrt(np.mean((a - b) ** 2) / max(np.mean(b**2), 1e-30)))


def half_errors(paths: dict, examples) -> dict:
  """Relative RMS of each int8 output against float, same inputs: encode
  on the utterances, decode_step on every step of the float greedy loop
  (fed the float encoder's outputs and the float step's state)."""
  f = tflite_runner.TFLiteParser(paths["float"], host_loop=True)
  q = tflite_runner.TFLiteParser(paths["int8"], host_loop=True)
  errs = {}

  def add(key, a, b):
    errs.setdefault(key, []).append(_rel_rms(a, b))

  for e in examples:
    fps, n = f.fingerprints(e.tokens)
    actions = f.host_decode(fps, n)  # Leaves float encode outputs loaded.
    (fe, fs), (qe, qs) = f.signatures(fps.shape[1]), q.signatures(fps.shape[1])
    qe.set("fingerprints", fps)
    qe.set("length", n)
    qe.invoke()
    for name in fe.outputs:
      add(f"encode/{name}", qe.get(name), fe.get(name))
    for name, buf in f._padded.items():
      qs.set(name, buf)
    qs.set("length", n)
    state, prev = dict(f._zeros), targets_lib.EOS_ID
    for t, action in enumerate(actions):
      q._run_step(qs, prev, t, state)
      _, _, nxt = f._run_step(fs, prev, t, state)
      for k in fs.outputs:
        add(f"decode_step/{k}", qs.get(k), fs.get(k))
      state, prev = nxt, int(action)
  return {k: float(np.mean(v)) for k, v in sorted(errs.items())}


def main(argv):
  cli.no_extra_args(argv)
  args = FLAGS
  _, _, _, config = checkpoints.load_for_inference(args.workdir, "best")
  examples = input_pipeline.load_split(config.data, args.split)
  if args.limit:
    examples = examples[: args.limit]
  paths = _files(args.workdir, args.calibration)
  result = {
    "workdir": args.workdir,
    "split": args.split,
    "calibration": args.calibration,
    "pairs": {},
  }
  ref = None
  for enc in ("float", "int8"):
    for step in ("float", "int8"):
      t0 = time.time()
      preds = decode_all(mixed_parser(paths, enc, step), examples)
      ref = ref or preds  # float/float comes first.
      m = evaluate.score(preds, examples)["metrics"]
      row = {
        "exact_match": m["exact_match"],
        "agreement_with_float_file": float(
          np.mean([a == b for a, b in zip(preds, ref, strict=True)])
        ),
      }
      result["pairs"][f"encode {enc}, decode_step {step}"] = row
      print(f"encode {enc:5s} step {step:5s}: {row} ({time.time() - t0:.0f}s)")
  for group in args.float_ops:
    ops = group.split("+")
    path = Path(args.workdir, "tflite", f"model_int8_float-{group}.tflite")
    r = export.export_workdir(
      args.workdir,
      path,
      "int8",
      args.calibration,
      signatures="steps",
      float_ops=ops,
    )
    parser = tflite_runner.TFLiteParser(path, host_loop=True)
    preds = decode_all(parser, examples)
    row = {
      "exact_match": evaluate.score(preds, examples)["metrics"]["exact_match"],
      "agreement_with_float_file": float(
        np.mean([a == b for a, b in zip(preds, ref, strict=True)])
      ),
      "bytes": r["bytes"],
    }
    result["pairs"][f"int8, {group} in float"] = row
    print(f"int8, {group} in float: {row}", flush=True)
  result["relative_rms"] = half_errors(paths, examples[: args.error_utterances])
  for k, v in result["relative_rms"].items():
    print(f"{k:40s} {v:.4f}")
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
  cli.run(main)
