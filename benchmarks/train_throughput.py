"""Training throughput (examples/s) of the pmapped train step, and where a
step's time goes.

  python benchmarks/train_throughput.py --config configs/mtop.py:en \
    --steps 100 --out benchmarks/results/train_throughput_mtop_en_cpu.json

Runs the real input pipeline and `train_step.train_step` on all local
devices (override e.g. --set train.batch_size=128, or
--config.train.batch_size=128), compiles every bucket shape first, then
times `--steps` steps. Real examples only are counted (filler rows of short
batches are not). Beside examples/s it reports the split of a step into
host input (making the batch), host-to-device transfer and device compute
(each timed alone, blocking), XLA's count of the step's FLOPs per real
example and the fraction of this machine's f32 matmul rate (measured here,
1024^3) that the timed steps reach, and the padding fill (real / padded
source tokens and target steps).
"""

import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Config files import `configs.default`: the repository root must be on the
# path before --config is parsed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import flags  # noqa: E402
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

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", "configs/default.py", "Training config file (path[:arg])."
)
flags.DEFINE_integer("steps", 100, "Timed steps.")
flags.DEFINE_multi_string("set", [], "key=value")
flags.DEFINE_string("out", "train_throughput.json", "JSON written here.")


def main(argv):
  cli.no_extra_args(argv)
  config = FLAGS.config
  # Each --set key=value is a one-point sweep: same typed parsing.
  config = sweep.apply(config, sweep.parse_sweeps(FLAGS.set, config)[0])
  with tempfile.TemporaryDirectory() as tmp:
    ontology, enc = train_data.training_data(config, tmp)
  model_cfg = models.from_config(config.model, len(ontology)).fit(enc)
  model = models.make_model(model_cfg)
  devices = jax.local_devices()
  n = len(devices)
  batches = input_pipeline.Batches(
    enc, config.train.batch_size, config.train.buckets, config.seed
  )
  state = train_state.create_train_state(
    config.train, model_cfg, jax.random.key(0)
  )
  loss_fn = train_step.make_loss_fn(model, config.train.label_smoothing)
  step = jax.pmap(
    functools.partial(train_step.train_step, loss_fn=loss_fn),
    axis_name="batch",
    donate_argnums=(0,),
  )
  state = flax.jax_utils.replicate(state)
  rng = flax.jax_utils.replicate(jax.random.key(1))

  def run(i):
    nonlocal state
    b = batches(i)
    real = float((b["weights"].sum(1) > 0).sum())
    state, sums = step(state, input_pipeline.shard(b, n), rng, None)
    return sums, real

  warm = set()
  i = 0
  t0 = time.perf_counter()
  while len(warm) < len(batches.shapes) and i < batches.steps_per_epoch:
    shape = batches(i)["targets"].shape
    if shape not in warm:
      # Twice: the first call's state comes from replicate(), later ones
      # from pmap's output, whose sharding differs (one more compile).
      jax.block_until_ready(run(i)[0])
      jax.block_until_ready(run(i)[0])
      warm.add(shape)
    i += 1
  compile_s = time.perf_counter() - t0
  examples = 0.0
  t0 = time.perf_counter()
  for k in range(FLAGS.steps):
    sums, real = run(i + k)
    examples += real
  jax.block_until_ready(sums)
  seconds = time.perf_counter() - t0
  timed = range(i, i + FLAGS.steps)
  out = {
    "benchmark": "train_throughput",
    "config": config_flags.get_config_filename(FLAGS["config"]),
    "overrides": FLAGS.set,
    "backend": jax.default_backend(),
    "devices": n,
    "device": devices[0].device_kind,
    "machine": platform.machine(),
    "date": time.strftime("%Y-%m-%d"),
    "params": models.param_count(flax.jax_utils.unreplicate(state.params)),
    "batch_size": config.train.batch_size,
    "bucket_shapes": [list(x) for x in batches.shapes],
    "steps": FLAGS.steps,
    "seconds": seconds,
    "steps_per_s": FLAGS.steps / seconds,
    "examples_per_s": examples / seconds,
    "compile_s": compile_s,
    **padding(batches, timed),
    **breakdown(step, state, rng, batches, timed, n),
  }
  flops = step_flops(step, state, rng, batches, timed, n)
  if flops:
    rate = matmul_rate()
    out["flops_per_example"] = flops / examples
    out["matmul_gflops"] = rate / 1e9
    out["fraction_of_matmul_rate"] = flops / seconds / rate
  print(json.dumps(out, indent=1))
  Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
  Path(FLAGS.out).write_text(json.dumps(out, indent=1))


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


def breakdown(step, state, rng, batches, steps, n, reps: int = 20) -> dict:
  """Median ms of making a batch (host), putting it on the devices, and the
  step on device-resident inputs, each timed alone and blocking."""
  host, put, compute = [], [], []
  for k in list(steps)[:reps]:
    t0 = time.perf_counter()
    b = input_pipeline.shard(batches(k), n)
    t1 = time.perf_counter()
    b = jax.block_until_ready(
      jax.device_put_sharded(
        [jax.tree.map(lambda x, d=d: x[d], b) for d in range(n)],
        jax.local_devices()[:n],
      )
    )
    t2 = time.perf_counter()
    state, sums = step(state, b, rng, None)
    jax.block_until_ready(sums)
    t3 = time.perf_counter()
    host.append(t1 - t0), put.append(t2 - t1), compute.append(t3 - t2)
  ms = lambda x: 1e3 * statistics.median(x)
  return {
    "host_input_ms": ms(host),
    "transfer_ms": ms(put),
    "device_step_ms": ms(compute),
  }


def step_flops(step, state, rng, batches, steps, n) -> float:
  """XLA's FLOP count of the timed steps (each batch at its shape), or 0
  where the backend gives none."""
  per_shape, total = {}, 0.0
  for k in steps:
    b = input_pipeline.shard(batches(k), n)
    shape = b["targets"].shape + b["fingerprints"].shape[2:3]
    shape += b["fingerprints"].shape[1:2]
    if shape not in per_shape:
      cost = step.lower(state, b, rng, None).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, list) else cost
      per_shape[shape] = float((cost or {}).get("flops", 0.0)) * n
    total += per_shape[shape]
  return total


def matmul_rate(size: int = 1024, reps: int = 20) -> float:
  """This machine's f32 matmul FLOP/s on one device (median of reps)."""
  a = jnp.ones((size, size), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a))
    times.append(time.perf_counter() - t0)
  return 2 * size**3 / statistics.median(times)


if __name__ == "__main__":
  cli.run(main)
