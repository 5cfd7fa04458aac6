"""On-device latency of exported models, part by part, on one thread.

  python benchmarks/latency.py --workdir runs/mtop_en \
    [--lstm_workdir runs/lstm_en] [--tflite a.tflite,b.tflite] \
    [--file en/test.txt] [--limit 300] \
    --out benchmarks/results/latency_mtop_en.json

Exports the workdir's best checkpoint as float and dynamic-range .tflite
files with every signature, int8 likewise (its loops calibrated in pieces,
loop_calibration.py) and the default dynamic file (one-call `parse_<t>`
and `beam4_<t>`: what an app ships), and the LSTM workdir's as int8, or
takes --tflite files as they are, and parses each utterance of --file
(default MTOP en test, or $MTOP_DIR) through pqrnn_jax/tflite_runner.py
with 1 interpreter thread, one utterance at a time: rows "<file>" run the
host loop over `decode_step`, rows "<file>_parse" one `parse_<t>` call per
utterance, rows "<file>_beam<K>_parse" one `beam<K>_<t>` call (files
exported with --beam_step K; K in --beams). Per row: whole-parse median
and p90, file size, op count per signature; host-loop rows add `encode`
and `decode_step` time, steps per parse and host time per step (the Python
and numpy of the loop: masks, copies, argmax); parse rows add the
interpreter call alone (`call_*`: what an app spends beside its own
fingerprinting) and the Python fingerprints, and their agreement with the
host loop of the same variant (equal action sequences). Python's garbage
collector is off while timing, as in `timeit`. All rows run in one
process, one after another on the same utterances, so their ratios are
what to compare on a noisy machine; --interleave also times one greedy
parse per file (`parse_<t>`, or the host loop where a file has none) and
one call of each `beam<K>_<t>` of --beams a file has, all taking turns on
each utterance: the fairer comparison when the machine drifts (and the
beams' ratios to greedy). Prints a table and writes JSON.
"""

import contextlib
import gc
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from pqrnn_jax import (
  calibration,
  cli,
  export,
  input_pipeline,
  tflite_file,
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
flags.DEFINE_integer(
  "calibration", calibration.DEFAULT_UTTERANCES, "int8 calibration utterances."
)
flags.DEFINE_string("out", "", "JSON output path.")
flags.DEFINE_bool(
  "interleave",
  False,
  "Also time one greedy parse per file (`parse_<t>`, else the host loop) "
  "and its one-call beams of --beams, taking turns on each utterance "
  "(JSON `interleaved`): the fair comparison on a drifting machine.",
)
flags.DEFINE_list(
  "beams",
  ["1"],
  "Beam sizes; beams > 1 run the files' one-call beam<K>_<t> and the pQRNN "
  "int8 file's host beam search.",
)
flags.DEFINE_integer(
  "beam_step",
  None,
  "Export with beam N signatures (export --beam_step): decode_step_k<N> in "
  "the step files (beam N then runs both batched and one call per "
  "hypothesis) and beam<N>_<t> beside parse_<t> (one-call beam rows). "
  "Default: export's (beam4_<t> in the dynamic files only).",
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


@contextlib.contextmanager
def quiet_gc():
  """Python's garbage collector off while timing, as `timeit` does: its
  pauses are the benchmark's own allocations, not the model's cost."""
  enabled = gc.isenabled()
  gc.collect()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


def _ms(xs, q=50):
  return float(np.percentile(xs, q) * 1e3) if xs else None


def _warm_parser(path, beam: int = 1):
  """A one-thread parser whose `parse_<t>` (or `beam<K>_<t>`) calls, or
  in a steps-only file its encoders and step, have each run once: first
  invokes allocate."""
  parser = tflite_runner.TFLiteParser(path, num_threads=1)
  for t in parser.parse_buckets or parser.buckets:
    parser.parse_tokens(["x"] * t, beam=beam)
  return parser


def time_parse_calls(path, token_lists, host=None, beam: int = 1) -> dict:
  """Latency of one `parse_<t>` (beam > 1: `beam<K>_<t>`) call per token
  list: the whole parse (Python fingerprints included, as in a host-loop
  parse), and apart, the interpreter call alone (what an app on device
  spends beside its own fingerprinting) and the Python fingerprints; and
  the share of lists whose actions equal those of `host` (a
  TFLiteParser's host loop, greedy or beam), when given."""
  parser = _warm_parser(path, beam)
  calls = []
  for t in parser.parse_buckets:
    _timed(parser.parse_signature(t, beam), calls)
  whole, featurize, got = [], [], []
  with quiet_gc():
    for tokens in token_lists:
      t0 = time.perf_counter()
      fps = parser.fingerprints(tokens)
      t1 = time.perf_counter()
      got.append(parser.graph_decode(*fps, beam))
      whole.append(time.perf_counter() - t0)
      featurize.append(t1 - t0)
  same = []
  pairs = zip(token_lists, got, strict=True) if host is not None else ()
  for tokens, actions in pairs:
    fps = host.fingerprints(tokens)
    want = host.beam_decode(*fps, beam) if beam > 1 else host.host_decode(*fps)
    same.append(np.array_equal(actions, want))
  data = Path(path).read_bytes()
  return {
    "path": str(path),
    "beam": beam,
    "bytes": len(data),
    "parses": len(whole),
    "parse_median_ms": _ms(whole),
    "parse_p90_ms": _ms(whole, 90),
    "call_median_ms": _ms(calls),
    "call_p90_ms": _ms(calls, 90),
    "featurize_median_ms": _ms(featurize),
    "agree_with_host_loop": float(np.mean(same)) if same else None,
    "ops": signature_ops(data),
  }


def time_parse_interleaved(paths, token_lists, beams=(1,)) -> dict:
  """Median and p90 of one parse per token list on each file (greedy: one
  `parse_<t>` call, or the host loop in a file without one; and for each
  beam K > 1 in `beams`, one `beam<K>_<t>` call where the file has it),
  the files and beams taking turns on every utterance (the order reversed
  on every other one), so that the machine's drift falls alike on all of
  them; a beam's row also gives its median over its file's greedy one."""
  runs = [(p, 1) for p in paths]
  runs += [
    (p, b)
    for b in beams
    if b > 1
    for p in paths
    if tflite_file.read_manifest(p).get("beam_parse") == b
  ]
  parsers = [_warm_parser(p, b) for p, b in runs]
  seconds = [[] for _ in runs]
  with quiet_gc():
    for i, tokens in enumerate(token_lists):
      order = list(enumerate(zip(parsers, runs, strict=True)))
      for j, (parser, (_, beam)) in order[:: -1 if i % 2 else 1]:
        t0 = time.perf_counter()
        fps = parser.fingerprints(tokens)
        if beam > 1:
          parser.graph_decode(*fps, beam)
        else:
          parser.decode(*fps)
        seconds[j].append(time.perf_counter() - t0)
  first = _ms(seconds[0])
  out = {}
  for (p, beam), s in zip(runs, seconds, strict=True):
    row = {"parse_median_ms": _ms(s), "parse_p90_ms": _ms(s, 90)}
    row["median_over_first"] = row["parse_median_ms"] / first
    if beam > 1:
      greedy = out[Path(p).stem]["parse_median_ms"]
      row["median_over_greedy"] = row["parse_median_ms"] / greedy
    out[Path(p).stem + (f"_beam{beam}" if beam > 1 else "")] = row
  return out


def time_file(path, token_lists, beam: int = 1, batched=True) -> dict:
  """Latency parts of one .tflite over token lists, one parse at a time:
  whole parse, `encode` and `decode_step` invokes, and the host's share
  (everything else: fingerprints, tensor copies, masks, argmax) per step."""
  parser = tflite_runner.TFLiteParser(path, num_threads=1, host_loop=True)
  parser.beam_step = parser.beam_step if batched else 0
  enc_s, step_s = {t: [] for t in parser.buckets}, []
  for t in parser.buckets:
    enc, step = parser.signatures(t)
    _timed(enc, enc_s[t])
  _timed(step, step_s)  # One decode_step for every bucket.
  if parser.beam_step and beam == parser.beam_step:  # Its batched step.
    _timed(parser._beam_signature(True), step_s)
  for t in parser.buckets:
    parser.parse_tokens(["x"] * t, beam=beam)  # Warm-up: first invokes.
    enc_s[t].clear()
  step_s.clear()
  whole, steps, host = [], [], []
  with quiet_gc():
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
  ms = _ms
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
    sets = {"float": "all", "dynamic": "all", "int8": "all"}
    sets["dynamic_default"] = None  # One-call parses: the file to ship.
    for name, which in sets.items():
      out = tmp / f"pqrnn_{name}.tflite"
      variant = name.split("_")[0]
      export.export_workdir(
        FLAGS.workdir,
        out,
        variant,
        FLAGS.calibration,
        buckets=_buckets(),
        signatures=which,
        beam=FLAGS.beam_step,
      )
      files[f"pqrnn_{name}"] = str(out)
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


def _host(files, mans, name):
  """A host-loop parser of the same variant as file `name`, if one is
  here (the file named `name` less "_parse" first, e.g. model_int8 for
  model_int8_parse); mans: each file's manifest, by name."""
  sibling = name.removesuffix("_parse")
  for other in sorted(files, key=lambda o: o != sibling):
    man = mans[other]
    if man["variant"] == mans[name]["variant"] and (
      "decode_step" in man["signatures"]
    ):
      return tflite_runner.TFLiteParser(
        files[other], num_threads=1, host_loop=True
      )
  return None


def _beam_ratios(rows) -> dict:
  """{beam row: its median parse over the same file's greedy one}: a beam
  call over the greedy call (`X_beam<K>_parse` / `X_parse`), the host beam
  over the host loop (`X_beam<K>` / `X`)."""
  ratios = {}
  for name, r in rows.items():
    base, beam, rest = name.rpartition("_beam")
    if not beam or rest.endswith("per_hypothesis"):
      continue
    greedy = rows.get(base + ("_parse" if rest.endswith("_parse") else ""))
    if greedy:
      ratios[name] = r["parse_median_ms"] / greedy["parse_median_ms"]
      if r.get("call_median_ms") and greedy.get("call_median_ms"):
        ratios[name + "_call"] = r["call_median_ms"] / greedy["call_median_ms"]
  return ratios


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
    mans = {name: tflite_file.read_manifest(f) for name, f in files.items()}
    with_parse = [n for n in files if mans[n].get("parse_buckets")]
    rows = {}
    for name, f in files.items():
      if "decode_step" in mans[name]["signatures"]:
        rows[name] = time_file(f, tokens)
      if name in with_parse:
        host = _host(files, mans, name)
        rows[f"{name}_parse"] = time_parse_calls(f, tokens, host)
    for beam in [int(b) for b in FLAGS.beams if int(b) > 1]:
      for name, f in files.items():  # One-call beam search in the file.
        if mans[name].get("beam_parse") == beam:
          rows[f"{name}_beam{beam}_parse"] = time_parse_calls(
            f, tokens, _host(files, mans, name), beam
          )
      if "pqrnn_int8" in files:
        rows[f"pqrnn_int8_beam{beam}"] = time_file(
          files["pqrnn_int8"], tokens, beam
        )
      if "pqrnn_int8" in files and beam == FLAGS.beam_step:
        rows[f"pqrnn_int8_beam{beam}_per_hypothesis"] = time_file(
          files["pqrnn_int8"], tokens, beam, batched=False
        )
    if FLAGS.interleave:
      beams = [int(b) for b in FLAGS.beams]
      turns = time_parse_interleaved(list(files.values()), tokens, beams)
  result = {
    "file": str(path),
    "machine": cli.machine(),
    "date": time.strftime("%Y-%m-%d"),
    "threads": 1,
    "buckets": _buckets(),
    "files": rows,
    "beam_over_greedy": _beam_ratios(rows),
  }
  if FLAGS.interleave:
    result["interleaved"] = turns
    for name, r in turns.items():
      print(
        f"interleaved {name}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in r.items())
      )
  cols = ("parse_median_ms", "parse_p90_ms", "call_median_ms")
  cols += ("featurize_median_ms", "encode_median_ms")
  cols += ("step_median_ms", "steps_per_parse", "host_per_step_median_ms")
  cols += ("agree_with_host_loop",)
  print("| file | bytes | " + " | ".join(cols) + " | ops |")
  print("|" + " --- |" * (len(cols) + 3))
  for name, r in rows.items():
    cells = [f"{r[c]:.3f}" if r.get(c) is not None else "-" for c in cols]
    ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
    print(f"| {name} | {r['bytes']:,} | " + " | ".join(cells) + f" | {ops} |")
  if FLAGS.out:
    cli.write_json(FLAGS.out, result)


if __name__ == "__main__":
  cli.run(main, errors=(RuntimeError,))
