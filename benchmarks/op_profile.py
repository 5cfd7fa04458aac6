"""Where a .tflite parse spends its time, kernel by kernel (Linux `perf`).

  python benchmarks/op_profile.py --tflite model_int8.tflite \
    [--mode host|parse|beam4] [--file en/eval.txt] [--limit 300] \
    [--reps 3] --out benchmarks/results/op_profile_int8.json

LiteRT's Python package has no op profiler (its C profiler is reachable
only through the C++ benchmark tool, which no registry here ships), so
this samples the CPU instead: a child process parses --file's utterances
one at a time through pqrnn_jax/tflite_runner.py (1 thread; `host`: the
host loop over `decode_step`, `parse`: one `parse_<t>` call, `beam<K>`:
one `beam<K>_<t>` call), and `perf record` attaches to it only after its
warm-up, so imports and first invokes are not counted. Each sampled
kernel symbol is put in one group (GROUPS: XNNPACK GEMMs by data type,
TFLite reference kernels, quantize/dequantize, interpreter overhead, the
Python and numpy of the host side, ...). Prints the groups and the top
symbols with their share of the samples; writes JSON. Shares, not times,
are what to read: perf's own overhead slows the parse a little.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

from pqrnn_jax import cli, input_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("tflite", None, "Exported .tflite file.")
flags.DEFINE_string("mode", "host", "host, parse or beam<K>.")
flags.DEFINE_string("file", "en/eval.txt", "Utterances (readers format).")
flags.DEFINE_integer("limit", 300, "Utterances per repetition; 0: all.")
flags.DEFINE_integer("reps", 3, "Passes over the utterances.")
flags.DEFINE_integer("top", 25, "Symbols listed.")
flags.DEFINE_string("out", "", "JSON output path.")

# (group, regex on "dso symbol"), first match wins. Which op a kernel
# serves is read from its name: xnn_* kernels run the ops XNNPACK took
# (FULLY_CONNECTED, BATCH_MATMUL, elementwise), tflite::reference_ops the
# ops left to TFLite's slow generic kernels.
GROUPS = (
  ("GEMM int8 (XNNPACK qs8: static int8)", r"xnn_qs8_\w*gemm"),
  ("GEMM dyn. int8 (XNNPACK qd8: dynamic range)", r"xnn_qd8_\w*gemm"),
  ("GEMM float (XNNPACK f32)", r"xnn_f32_\w*gemm"),
  ("BATCH_MATMUL + TRANSPOSE (TFLite reference)", r"BatchMatMul|Transpose"),
  ("requantization (TFLite reference kernels)", r"MultiplyByQuantized"),
  ("quantize / dequantize", r"vcvt|qd8_asymmetric|Quantiz|pack_lh"),
  ("weight packing (XNNPACK, non-constant operands)", r"xnn_\w*packw"),
  ("WHILE body re-planning", r"TensorReleaseMap|SimpleMemoryArena"),
  ("other XNNPACK kernels", r"xnn_\w*ukernel"),
  ("XNNPACK dispatch", r"xnn_|pthreadpool|xnnpack::"),
  ("other TFLite reference kernels", r"reference_ops|reference_integer_ops"),
  ("interpreter overhead", r"tflite::(Subgraph|RuntimeShape|Simple|Get|Arena)"),
  ("other TFLite kernels", r"tflite::|litert"),
  ("host: Python + numpy", r"libpython|_multiarray|numpy|openblas|\.cpython"),
  ("OS kernel", r"\[kernel"),
  ("libc / other", r""),
)

CHILD = """
import sys, time
import numpy as np
from pqrnn_jax.data import readers
from pqrnn_jax.tflite_runner import TFLiteParser
path, mode, file, limit, reps = sys.argv[1:6]
toks = [e.tokens for e in readers.read_examples(file) if e.tokens]
toks = toks[: int(limit) or None]
beam = 1 if mode in ("host", "parse") else int(mode[4:])
p = TFLiteParser(path, host_loop=mode == "host")
for t in p.buckets:
  p.parse_tokens(["x"] * t, beam=beam)
print("ready", flush=True)
sys.stdin.readline()
spent = []
for _ in range(int(reps)):
  for tk in toks:
    t0 = time.perf_counter()
    fps, n = p.fingerprints(tk)
    if mode == "host":
      p.host_decode(fps, n)
    else:
      p.graph_decode(fps, n, beam)
    spent.append(time.perf_counter() - t0)
print("median_ms", 1e3 * float(np.median(spent)), flush=True)
"""


def _utterance_file() -> Path:
  path = Path(FLAGS.file)
  if not path.is_absolute() and not path.exists():
    path = input_pipeline.default_mtop_dir() / path
  if not path.exists():
    raise FileNotFoundError(f"no utterance file {path}")
  return path


def record(tflite: str, mode: str, file: Path, data: Path) -> float:
  """Runs the parses under `perf record` (after warm-up); median ms."""
  args = [tflite, mode, str(file), str(FLAGS.limit), str(FLAGS.reps)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  child = subprocess.Popen(
    [sys.executable, "-c", CHILD, *args],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
    env=env,
  )
  if child.stdout.readline().strip() != "ready":
    child.wait()
    raise RuntimeError(f"the parse process failed (exit {child.returncode})")
  perf = subprocess.Popen(
    ["perf", "record", "-q", "-F", "4000", "-p", str(child.pid)]
    + ["-o", str(data)],
    stderr=subprocess.DEVNULL,
  )
  time.sleep(1.0)  # perf attaches.
  child.stdin.write("go\n")
  child.stdin.flush()
  out = child.stdout.read()
  child.wait()
  perf.wait()
  if child.returncode != 0 or "median_ms" not in out:
    raise RuntimeError(f"the parse process failed (exit {child.returncode})")
  return float(out.split()[-1])


def symbols(data: Path) -> list[tuple[int, str, str]]:
  """(samples, dso, symbol) per sampled symbol, most first."""
  rep = subprocess.run(
    ["perf", "report", "-i", str(data), "--stdio", "-n"]
    + ["--sort", "dso,sym", "--no-children"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  rows = []
  for line in rep.splitlines():
    m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\S+)\s+\[.\]\s+(.*)", line)
    if m:
      rows.append((int(m[1]), m[2], m[3].strip()))
  return sorted(rows, reverse=True)


def group_of(dso: str, sym: str) -> str:
  text = f"{dso} {sym}"
  return next(g for g, rx in GROUPS if re.search(rx, text))


def main(argv):
  cli.no_extra_args(argv)
  if not FLAGS.tflite:
    raise ValueError("--tflite is required")
  if not shutil.which("perf"):
    raise RuntimeError("no `perf` on PATH (Debian: apt install linux-perf)")
  if not re.fullmatch(r"host|parse|beam\d+", FLAGS.mode):
    raise ValueError(f"--mode {FLAGS.mode!r}: host, parse or beam<K>")
  with tempfile.TemporaryDirectory() as tmp:
    data = Path(tmp) / "perf.data"
    median = record(FLAGS.tflite, FLAGS.mode, _utterance_file(), data)
    rows = symbols(data)
  total = sum(n for n, _, _ in rows) or 1
  groups = {}
  for n, dso, sym in rows:
    g = group_of(dso, sym)
    groups[g] = groups.get(g, 0) + n
  groups = dict(sorted(groups.items(), key=lambda kv: -kv[1]))
  result = {
    "tflite": FLAGS.tflite,
    "mode": FLAGS.mode,
    "file": FLAGS.file,
    "utterances_x_reps": [FLAGS.limit, FLAGS.reps],
    "machine": cli.machine(),
    "date": time.strftime("%Y-%m-%d"),
    "parse_median_ms_under_perf": median,
    "samples": total,
    "groups": {g: round(n / total, 4) for g, n in groups.items()},
    "symbols": [
      {"share": round(n / total, 4), "dso": dso, "symbol": sym}
      for n, dso, sym in rows[: FLAGS.top]
    ],
  }
  print(
    f"{FLAGS.tflite} ({FLAGS.mode}): {total} samples, parse median "
    f"{median:.3f} ms under perf"
  )
  print("| group | share of samples |\n| --- | --- |")
  for g, share in result["groups"].items():
    print(f"| {g} | {100 * share:.1f} % |")
  print("| symbol | share |\n| --- | --- |")
  for s in result["symbols"]:
    print(f"| `{s['symbol'][:90]}` | {100 * s['share']:.1f} % |")
  if FLAGS.out:
    cli.write_json(FLAGS.out, result)


if __name__ == "__main__":
  cli.run(main, errors=(RuntimeError,))
