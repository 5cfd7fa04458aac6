"""On-device latency of exported models, part by part, on one thread.

  python benchmarks/latency.py --workdir runs/mtop_en \
    [--lstm_workdir runs/lstm_en] [--tflite a.tflite,b.tflite] \
    [--file en/test.txt] [--limit 300] \
    --out benchmarks/results/latency_mtop_en.json

Exports the workdir's best checkpoint as float, dynamic-range and int8
.tflite files (and the LSTM workdir's as int8), or takes --tflite files as
they are, and parses each utterance of --file (default MTOP en test, or
$MTOP_DIR) through pqrnn_jax/tflite_runner.py with 1 interpreter thread,
one utterance at a time. Per file: whole-parse median and p90, `encode`
time, `decode_step` time, steps per parse, host time per step (the Python
and numpy of the loop: masks, copies, argmax), op count per signature (from
the flatbuffer) and file size. All variants run in one process, one after
another on the same utterances, so their ratios are what to compare on a
noisy machine. Prints a table and writes JSON.
"""

import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from pqrnn_jax import (
  cli,
  export,
  input_pipeline,
  tflite_runner,
  tflite_signatures,
)
from pqrnn_jax.data import readers

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir to export.")
flags.DEFINE_string("lstm_workdir", None, "LSTM baseline workdir (int8).")
flags.DEFINE_list("tflite", [], "Exported .tflite files to time as they are.")
flags.DEFINE_string("file", "en/test.txt", "Utterances (readers format).")
flags.DEFINE_integer("limit", 300, "Utterances timed per file; 0: all.")
flags.DEFINE_integer("calibration", 300, "int8 calibration utterances.")
flags.DEFINE_string("out", "", "JSON output path.")
flags.DEFINE_list(
  "beams", ["1"], "Beam sizes; beams > 1 run the pQRNN int8 file only."
)
flags.DEFINE_list(
  "buckets",
  [str(b) for b in tflite_signatures.DEFAULT_BUCKETS],
  "Export length buckets below T_max ('' for none: one pair at T_max).",
)


def signature_ops(tflite_bytes) -> dict[str, int]:
  """Operators per signature (each signature is one subgraph)."""
  from ai_edge_litert import schema_py_generated as schema

  m = schema.Model.GetRootAs(tflite_bytes, 0)
  out = {}
  for i in range(m.SignatureDefsLength()):
    sd = m.SignatureDefs(i)
    sub = m.Subgraphs(sd.SubgraphIndex())
    out[sd.SignatureKey().decode()] = sub.OperatorsLength()
  return out


def _timed(sig, spent: list) -> None:
  """Makes `sig.invoke` add its seconds to `spent`."""
  invoke = sig.invoke

  def timed():
    t0 = time.perf_counter()
    invoke()
    spent.append(time.perf_counter() - t0)

  sig.invoke = timed


def time_file(path, token_lists, beam: int = 1) -> dict:
  """Latency parts of one .tflite over token lists, one parse at a time:
  whole parse, `encode` and `decode_step` invokes, and the host's share
  (everything else: fingerprints, tensor copies, masks, argmax) per step."""
  parser = tflite_runner.TFLiteParser(path, num_threads=1)
  enc_s, step_s = {t: [] for t in parser.buckets}, []
  for t in parser.buckets:
    enc, step = parser.signatures(t)
    _timed(enc, enc_s[t])
  _timed(step, step_s)  # One decode_step for every bucket.
  for t in parser.buckets:
    parser.parse_tokens(["x"] * t, beam=beam)  # Warm-up: first invokes.
    enc_s[t].clear()
  step_s.clear()
  whole, steps, host = [], [], []
  for tokens in token_lists:
    e0 = sum(sum(v) for v in enc_s.values())
    s0, n0 = sum(step_s), len(step_s)
    t0 = time.perf_counter()
    parser.parse_tokens(tokens, beam=beam)
    total = time.perf_counter() - t0
    spent = sum(sum(v) for v in enc_s.values()) - e0 + sum(step_s) - s0
    n = len(step_s) - n0
    whole.append(total)
    steps.append(n)
    host.append((total - spent) / max(n, 1))
  ms = lambda xs, q=50: float(np.percentile(xs, q) * 1e3) if xs else None
  data = Path(path).read_bytes()
  every = [x for v in enc_s.values() for x in v]
  return {
    "path": str(path),
    "beam": beam,
    "bytes": len(data),
    "parses": len(whole),
    "parse_median_ms": ms(whole),
    "parse_p90_ms": ms(whole, 90),
    "encode_median_ms": ms(every),
    "encode_median_ms_by_bucket": {t: ms(v) for t, v in enc_s.items()},
    "parses_by_bucket": {t: len(v) for t, v in enc_s.items()},
    "step_median_ms": ms(step_s),
    "steps_per_parse": float(np.mean(steps)),
    "host_per_step_median_ms": ms(host),
    "ops": signature_ops(data),
  }


def _buckets() -> list[int]:
  return [int(b) for b in FLAGS.buckets if b]


def _exports(tmp: Path) -> dict[str, str]:
  """name -> .tflite path: the workdirs' exports, then --tflite files."""
  files = {}
  if FLAGS.workdir:
    for variant in export.VARIANTS:
      out = tmp / f"pqrnn_{variant}.tflite"
      export.export_workdir(
        FLAGS.workdir, out, variant, FLAGS.calibration, buckets=_buckets()
      )
      files[f"pqrnn_{variant}"] = str(out)
  if FLAGS.lstm_workdir:
    out = tmp / "lstm_int8.tflite"
    export.export_workdir(
      FLAGS.lstm_workdir, out, "int8", FLAGS.calibration, buckets=_buckets()
    )
    files["lstm_int8"] = str(out)
  for f in FLAGS.tflite:
    if not Path(f).exists():
      raise FileNotFoundError(f"no .tflite file {f}")
    files[Path(f).stem] = f
  if not files:
    raise ValueError("give --workdir, --lstm_workdir or --tflite")
  return files


def main(argv):
  cli.no_extra_args(argv)
  path = Path(FLAGS.file)
  if not path.is_absolute() and not path.exists():
    path = input_pipeline.default_mtop_dir() / path
  if not path.exists():
    raise FileNotFoundError(f"no utterance file {path}")
  examples = readers.read_examples(path)
  tokens = [e.tokens for e in examples if e.tokens]
  tokens = tokens[: FLAGS.limit or None]
  with tempfile.TemporaryDirectory() as tmp:
    files = _exports(Path(tmp))
    rows = {name: time_file(f, tokens) for name, f in files.items()}
    for beam in [int(b) for b in FLAGS.beams if int(b) > 1]:
      if "pqrnn_int8" in files:
        rows[f"pqrnn_int8_beam{beam}"] = time_file(
          files["pqrnn_int8"], tokens, beam
        )
  result = {
    "file": str(path),
    "machine": f"{platform.machine()} {platform.processor()}".strip(),
    "date": time.strftime("%Y-%m-%d"),
    "threads": 1,
    "buckets": _buckets(),
    "files": rows,
  }
  cols = ("parse_median_ms", "parse_p90_ms", "encode_median_ms")
  cols += ("step_median_ms", "steps_per_parse", "host_per_step_median_ms")
  print("| file | bytes | " + " | ".join(cols) + " | ops |")
  print("|" + " --- |" * (len(cols) + 3))
  for name, r in rows.items():
    cells = [f"{r[c]:.3f}" if r[c] is not None else "-" for c in cols]
    ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
    print(f"| {name} | {r['bytes']:,} | " + " | ".join(cells) + f" | {ops} |")
  if FLAGS.out:
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main, errors=(RuntimeError,))
