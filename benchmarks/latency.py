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

from pqrnn_jax import cli, export, input_pipeline, tflite_runner
from pqrnn_jax.data import readers

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir to export.")
flags.DEFINE_string("lstm_workdir", None, "LSTM baseline workdir (int8).")
flags.DEFINE_list("tflite", [], "Exported .tflite files to time as they are.")
flags.DEFINE_string("file", "en/test.txt", "Utterances (readers format).")
flags.DEFINE_integer("limit", 300, "Utterances timed per file; 0: all.")
flags.DEFINE_integer("calibration", 300, "int8 calibration utterances.")
flags.DEFINE_string("out", "", "JSON output path.")


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


class _Timed:
  """A signature runner that adds the seconds of each call to `spent`."""

  def __init__(self, runner, spent: list):
    self.runner, self.spent = runner, spent

  def __call__(self, **kw):
    t0 = time.perf_counter()
    out = self.runner(**kw)
    self.spent.append(time.perf_counter() - t0)
    return out

  def __getattr__(self, name):
    return getattr(self.runner, name)


def time_file(path, token_lists) -> dict:
  """Latency parts of one .tflite over token lists, one parse at a time."""
  parser = tflite_runner.TFLiteParser(path, num_threads=1)
  enc_s, step_s = [], []
  parser._encode = _Timed(parser._encode, enc_s)
  parser._step = _Timed(parser._step, step_s)
  for tokens in token_lists[:3]:  # Warm-up: allocation, first-call costs.
    parser.parse_tokens(tokens)
  enc_s.clear(), step_s.clear()
  whole, steps, host = [], [], []
  for tokens in token_lists:
    e0, s0 = len(enc_s), len(step_s)
    t0 = time.perf_counter()
    parser.parse_tokens(tokens)
    total = time.perf_counter() - t0
    n = len(step_s) - s0
    whole.append(total)
    steps.append(n)
    host.append((total - sum(enc_s[e0:]) - sum(step_s[s0:])) / max(n, 1))
  ms = lambda xs, q=50: float(np.percentile(xs, q) * 1e3)
  data = Path(path).read_bytes()
  return {
    "path": str(path),
    "bytes": len(data),
    "parses": len(whole),
    "parse_median_ms": ms(whole),
    "parse_p90_ms": ms(whole, 90),
    "encode_median_ms": ms(enc_s),
    "step_median_ms": ms(step_s),
    "steps_per_parse": float(np.mean(steps)),
    "host_per_step_median_ms": ms(host),
    "ops": signature_ops(data),
  }


def _exports(tmp: Path) -> dict[str, str]:
  """name -> .tflite path: the workdirs' exports, then --tflite files."""
  files = {}
  if FLAGS.workdir:
    for variant in export.VARIANTS:
      out = tmp / f"pqrnn_{variant}.tflite"
      export.export_workdir(FLAGS.workdir, out, variant, FLAGS.calibration)
      files[f"pqrnn_{variant}"] = str(out)
  if FLAGS.lstm_workdir:
    out = tmp / "lstm_int8.tflite"
    export.export_workdir(FLAGS.lstm_workdir, out, "int8", FLAGS.calibration)
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
  result = {
    "file": str(path),
    "machine": f"{platform.machine()} {platform.processor()}".strip(),
    "date": time.strftime("%Y-%m-%d"),
    "threads": 1,
    "files": rows,
  }
  cols = ("parse_median_ms", "parse_p90_ms", "encode_median_ms")
  cols += ("step_median_ms", "steps_per_parse", "host_per_step_median_ms")
  print("| file | bytes | " + " | ".join(cols) + " | ops |")
  print("|" + " --- |" * (len(cols) + 3))
  for name, r in rows.items():
    cells = [f"{r[c]:.3f}" for c in cols]
    ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
    print(f"| {name} | {r['bytes']:,} | " + " | ".join(cells) + f" | {ops} |")
  if FLAGS.out:
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main, errors=(RuntimeError,))
