"""Training throughput (examples/s) of the pmapped train step, where a
step's time goes, and the same for an older revision in the same run.

  python benchmarks/train_throughput.py --config configs/mtop.py:en \
    --steps 100 --baseline 7db2e7a \
    --out benchmarks/results/train_throughput_mtop_en_cpu.json

Runs the real input pipeline and `train_step.train_step` on all local
devices (override e.g. --set train.batch_size=128), compiles every bucket
shape first (the compile time is reported apart), then times `--steps`
steps fed as the training loop feeds them (host batches, asynchronous
dispatch). Real examples only are counted (filler rows of short batches are
not); with train.packing=True a row holds several (pqrnn_jax/packing.py).
Beside examples/s it reports:
  - the split of a step into host input (making the batch), host-to-device
    transfer (device_put of the same arrays) and the step itself, each
    timed alone and blocking (median ms);
  - XLA's count of the step's FLOPs per real example and the fraction of
    this machine's matmul rate (1024^3, measured here: float32, and
    bfloat16 operands with float32 sums) reached;
  - the padding fill: real / padded source tokens and target steps;
  - with --profile_steps N, op time per step by part of the step (matmuls and
    other ops of each model block forward and backward, the optimizer), from a
    jax.profiler trace of N steps of the commonest shape (XLA:CPU traces
    every op; the parts run on several threads, so they sum past the wall).

--baseline REV measures git revision REV (a worktree of this repository,
its own config file and package) in a child process first, then this
checkout, and records both and their ratio: before and after on one
machine in one run.
"""

import collections
import functools
import gzip
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Config files import `configs.default`: the measured tree's root must be on
# the path before --config is parsed ($PQRNN_BENCH_ROOT: a baseline's).
ROOT = Path(os.environ.get("PQRNN_BENCH_ROOT") or Path(__file__).parents[1])
sys.path.insert(0, str(ROOT.resolve()))

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from pqrnn_jax import (  # noqa: E402
  cli,
  input_pipeline,
  models,
  sweep,
  train_data,
  train_state,
  train_step,
)

try:  # Older measured revisions have no devices module.
  from pqrnn_jax import devices as devices_lib  # noqa: E402
except ImportError:
  devices_lib = None

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", "configs/default.py", "Training config file (path[:arg])."
)
flags.DEFINE_integer("steps", 100, "Timed steps.")
flags.DEFINE_multi_string("set", [], "key=value")
flags.DEFINE_string("baseline", "", "A git revision to measure first.")
flags.DEFINE_string("out", "train_throughput.json", "JSON written here.")
flags.DEFINE_integer(
  "profile_steps", 0, "Trace this many steps for op time by part (0: no)."
)


def main(argv):
  cli.no_extra_args(argv)
  baseline = run_baseline(FLAGS.baseline) if FLAGS.baseline else None
  out = measure(FLAGS.config, FLAGS.steps)
  if baseline is not None:
    out["baseline"] = baseline
    out["speedup_examples_per_s"] = (
      out["examples_per_s"] / baseline["examples_per_s"]
    )
  print(json.dumps(out, indent=1))
  Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
  Path(FLAGS.out).write_text(json.dumps(out, indent=1))


def run_baseline(rev: str) -> dict:
  """This script on a worktree of `rev`, in a child process: its JSON."""
  repo = Path(__file__).resolve().parents[1]
  sha = subprocess.run(
    ["git", "-C", str(repo), "rev-parse", "--short", rev],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  with tempfile.TemporaryDirectory() as tmp:
    tree = Path(tmp) / "tree"
    subprocess.run(
      ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), sha],
      check=True,
      capture_output=True,
    )
    try:
      out = Path(tmp) / "baseline.json"
      args = [
        f"--config={config_flags.get_config_filename(FLAGS['config'])}",
        f"--steps={FLAGS.steps}",
        *[f"--set={x}" for x in FLAGS.set],
      ]
      env = dict(
        os.environ,
        PQRNN_BENCH_ROOT=str(tree),
        # The worktree has no ../shared beside it.
        MTOP_DIR=str(input_pipeline.default_mtop_dir()),
      )
      logging.info("measuring the baseline %s in %s", sha, tree)
      subprocess.run(
        [sys.executable, __file__, *args, f"--out={out}"],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
      )
      result = json.loads(out.read_text())
    finally:
      subprocess.run(
        ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
        check=False,
      )
  result["revision"] = sha
  return result


def revision() -> str:
  r = subprocess.run(
    ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
    capture_output=True,
    text=True,
  )
  return r.stdout.strip()


def measure(config, steps: int) -> dict:
  """Throughput, breakdown and padding of `steps` steps of `config`."""
  # Each --set key=value is a one-point sweep: same typed parsing.
  config = sweep.apply(config, sweep.parse_sweeps(FLAGS.set, config)[0])
  with tempfile.TemporaryDirectory() as tmp:
    ontology, enc = train_data.training_data(config, tmp)
  model_cfg = models.from_config(config.model, len(ontology)).fit(enc)
  model = models.make_model(model_cfg)
  devices = jax.local_devices()
  n = len(devices)
  # A baseline revision's package may predate packing and Batches.examples.
  packed = config.train.get("packing", False)
  kw = {"packed_vocab": len(ontology), "row_multiple": math.lcm(2, n)}
  batches = input_pipeline.Batches(
    enc,
    config.train.batch_size,
    config.train.buckets,
    config.seed,
    **(kw if packed else {}),
  )

  def real_examples(i, b):
    if hasattr(batches, "examples"):
      return float(batches.examples(i))
    return float((b["weights"].sum(1) > 0).sum())

  def shape_of(i):
    if hasattr(batches, "shape"):
      return batches.shape(i)
    b = batches(i)
    return b["targets"].shape + b["fingerprints"].shape

  state = train_state.create_train_state(
    config.train, model_cfg, jax.random.key(0)
  )
  loss_fn = train_step.make_loss_fn(model, config.train.label_smoothing)
  step = jax.pmap(
    functools.partial(train_step.train_step, loss_fn=loss_fn),
    axis_name="batch",
    # As the measured revision's training does (older ones always donated).
    donate_argnums=getattr(devices_lib, "donated_state", lambda d: (0,))(
      devices
    ),
  )
  state = flax.jax_utils.replicate(state)
  rng = flax.jax_utils.replicate(jax.random.key(1))

  def run(i):
    nonlocal state
    b = batches(i)
    state, sums = step(state, input_pipeline.shard(b, n), rng, None)
    return sums, real_examples(i, b)

  # Every shape of the timed steps once (twice for the first: flax's
  # replicate() lays the state out unlike the step's outputs), so no timed
  # step compiles.
  timed = range(steps)
  first = {}
  for k in timed:
    first.setdefault(shape_of(k), k)
  t0 = time.perf_counter()
  for j, k in enumerate(first.values()):
    for _ in range(2 if j == 0 else 1):
      jax.block_until_ready(run(k)[0])
  compile_s = time.perf_counter() - t0
  examples = 0.0
  t0 = time.perf_counter()
  for k in timed:
    sums, real = run(k)
    examples += real
  jax.block_until_ready(sums)
  seconds = time.perf_counter() - t0
  out = {
    "benchmark": "train_throughput",
    "revision": revision(),
    "config": config_flags.get_config_filename(FLAGS["config"]),
    "overrides": FLAGS.set,
    "backend": jax.default_backend(),
    "devices": n,
    "device": devices[0].device_kind,
    # A measured older revision may predate cli.machine.
    "machine": getattr(cli, "machine", platform.machine)(),
    "cpus": os.cpu_count(),
    "date": time.strftime("%Y-%m-%d"),
    "params": models.param_count(flax.jax_utils.unreplicate(state.params)),
    "batch_size": config.train.batch_size,
    "packing": bool(packed),
    "bucket_shapes": [list(x) for x in batches.shapes],
    # Packed: (rows, T_r, U_r) of the timed steps, and how many had each.
    "step_shapes": {
      "x".join(map(str, x)): sum(shape_of(k) == x for k in timed) for x in first
    },
    "steps": steps,
    "seconds": seconds,
    "steps_per_s": steps / seconds,
    "examples_per_s": examples / seconds,
    "compile_s": compile_s,
    **padding(batches, timed),
  }
  parts = breakdown(step, state, rng, batches, timed, devices)
  state = parts.pop("state")
  out.update(parts)
  if FLAGS.profile_steps:
    common = collections.Counter(map(shape_of, timed)).most_common(1)[0][0]
    ks = [k for k in timed if shape_of(k) == common][: FLAGS.profile_steps]
    out["op_time_ms"] = op_profile(
      step, state, rng, [input_pipeline.shard(batches(k), n) for k in ks]
    )
  flops = step_flops(step, state, rng, batches, timed, n)
  if flops:
    rate, bf16_rate = matmul_rate(), matmul_rate(operands=jnp.bfloat16)
    out["flops_per_example"] = flops / examples
    out["matmul_gflops"] = rate / 1e9
    out["fraction_of_matmul_rate"] = flops / seconds / rate
    # The rate of bfloat16 operands with float32 sums (model.matmul).
    out["bf16_matmul_gflops"] = bf16_rate / 1e9
    out["fraction_of_bf16_matmul_rate"] = flops / seconds / bf16_rate
  return out


def padding(batches, steps) -> dict:
  """Real / padded source tokens and target steps over `steps`."""
  src = pad_src = tgt = pad_tgt = 0.0
  for k in steps:
    b = batches(k)
    src += float(b["lengths"][b["weights"].sum(1) > 0].sum())
    pad_src += b["lengths"].size * b["fingerprints"].shape[1]
    tgt += float(b["weights"].sum())
    pad_tgt += b["weights"].size
  return {"source_fill": src / pad_src, "target_fill": tgt / pad_tgt}


def breakdown(step, state, rng, batches, steps, devices, reps=30) -> dict:
  """Median ms of making a batch (host), putting its arrays on the devices
  (the bytes the step moves), and one blocking step fed host arrays as in
  training (transfer included); device_step_ms is their difference."""
  host, put, whole = [], [], []
  n = len(devices)
  for k in list(steps)[:reps]:
    t0 = time.perf_counter()
    b = input_pipeline.shard(batches(k), n)
    t1 = time.perf_counter()
    jax.block_until_ready(
      [
        jax.device_put(jax.tree.map(lambda x, d=d: x[d], b), dev)
        for d, dev in enumerate(devices)
      ]
    )
    t2 = time.perf_counter()
    state, sums = step(state, b, rng, None)
    jax.block_until_ready(sums)
    t3 = time.perf_counter()
    host.append(t1 - t0), put.append(t2 - t1), whole.append(t3 - t2)
  ms = lambda x: 1e3 * statistics.median(x)
  return {
    "host_input_ms": ms(host),
    "transfer_ms": ms(put),
    "step_ms": ms(whole),
    "device_step_ms": ms(whole) - ms(put),
    "state": state,
  }


def step_flops(step, state, rng, batches, steps, n) -> float:
  """XLA's FLOP count of the timed steps (each batch at its shape), or 0
  where the backend gives none."""
  per_shape, total = {}, 0.0
  for k in steps:
    b = input_pipeline.shard(batches(k), n)
    shape = b["targets"].shape + b["fingerprints"].shape
    if shape not in per_shape:
      cost = step.lower(state, b, rng, None).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, list) else cost
      per_shape[shape] = float((cost or {}).get("flops", 0.0)) * n
    total += per_shape[shape]
  return total


def op_profile(step, state, rng, data) -> dict:
  """ms per step of each part of the step (`_part`), and the wall time
  while traced, over the sharded batches `data` (all of one shape)."""
  state, sums = step(state, data[0], rng, None)  # Compiled: not traced.
  jax.block_until_ready(sums)
  ops = _op_names(step.lower(state, data[0], rng, None).compile().as_text())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      t0 = time.perf_counter()
      for b in data:
        state, sums = step(state, b, rng, None)
      jax.block_until_ready(sums)
      wall = time.perf_counter() - t0  # Tracing slows the ops down.
    path = next(Path(tmp).rglob("*.trace.json.gz"))
    events = json.load(gzip.open(path))["traceEvents"]
  parts = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e["name"] in ops:  # Not the runtime's own.
      parts[_part(e["name"], ops[e["name"]])] += e["dur"] / 1e3
  per_step = {k: v / len(data) for k, v in parts.most_common()}
  return {"traced_wall": 1e3 * wall / len(data), **per_step}


def _op_names(hlo_text: str) -> dict:
  """HLO instruction -> the JAX op that made it ("" where none is named)."""
  names = {}
  for line in hlo_text.splitlines():
    m = re.match(r"\s*(?:ROOT )?%(\S+) = ", line)
    if m:
      src = re.search(r'op_name="([^"]*)"', line)
      names[m.group(1)] = src.group(1) if src else ""
  return names


def _part(op: str, src: str) -> str:
  """The part of a train step an XLA:CPU op belongs to."""
  if op.startswith(("ynn_fusion", "xnn_fusion", "dot")):
    kind = "matmul"
  elif not src:
    return "unnamed (loop carries, copies)"
  elif "jvp(" not in src:
    return "optimizer, EMA, gradient sums"
  else:
    kind = "other ops"
  direction = "backward" if "transpose(" in src else "forward"
  block = next((b for k, b in _BLOCKS if k in src), "loss")
  return f"{direction}, {block}: {kind}"


# The model's scopes (op_name paths), first match wins.
_BLOCKS = (
  ("encode/encoder", "biQRNN encoder"),
  ("Seq2Seq.encode", "projection and bottleneck"),
  ("decode/matt", "decoder layers"),
  ("decode/head", "pointer head"),
  ("Seq2Seq.decode", "decoder input"),
)


def matmul_rate(size=1024, reps=20, operands=jnp.float32) -> float:
  """This machine's matmul FLOP/s on one device (median of reps): float32
  operands, or bfloat16 ones summed in float32."""
  a = jnp.ones((size, size), operands)
  f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  jax.block_until_ready(f(a))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a))
    times.append(time.perf_counter() - t0)
  return 2 * size**3 / statistics.median(times)


if __name__ == "__main__":
  cli.run(main)
