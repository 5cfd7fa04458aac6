"""Training throughput (examples/s) of the pmapped train step.

  python benchmarks/train_throughput.py --config configs/mtop.py:en \
    --steps 100 --out benchmarks/results/train_throughput_mtop_en_cpu.json

Runs the real input pipeline and `training.train_step` on all local devices
(override e.g. --set train.batch_size=128), compiles every bucket shape
first, then times `--steps` steps. Real examples only are counted (filler
rows of short batches are not).
"""

import argparse
import functools
import json
import platform
import tempfile
import time
from pathlib import Path

import flax
import jax

from pqrnn_jax import input_pipeline, sweep, training
from pqrnn_jax import model as model_lib


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/default.py")
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--set", action="append", default=[], help="key=value")
  p.add_argument("--out", default="train_throughput.json")
  a = p.parse_args()
  config = sweep.load_config(a.config)
  # Each --set key=value is a one-point sweep: same typed parsing.
  config = sweep.apply(config, sweep.parse_sweeps(a.set, config)[0])
  with tempfile.TemporaryDirectory() as tmp:
    ontology, enc = training.setup_data(config, tmp)
  model_cfg = model_lib.ModelConfig.from_config(config.model, len(ontology))
  model = model_lib.make_model(model_cfg)
  devices = jax.local_devices()
  n = len(devices)
  batches = input_pipeline.Batches(
    enc, config.train.batch_size, config.train.buckets, config.seed
  )
  state = training.create_train_state(config, model_cfg, jax.random.key(0))
  step = jax.pmap(
    functools.partial(
      training.train_step,
      model=model,
      label_smoothing=config.train.label_smoothing,
    ),
    axis_name="batch",
    donate_argnums=(0,),
  )
  state = flax.jax_utils.replicate(state)
  rng = flax.jax_utils.replicate(jax.random.key(1))

  def run(i):
    nonlocal state
    b = batches(i)
    real = float((b["weights"].sum(1) > 0).sum())
    b = jax.tree.map(lambda x: x.reshape(n, -1, *x.shape[1:]), b)
    state, sums = step(state, b, rng, None)
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
  for k in range(a.steps):
    sums, real = run(i + k)
    examples += real
  jax.block_until_ready(sums)
  seconds = time.perf_counter() - t0
  out = {
    "benchmark": "train_throughput",
    "config": a.config,
    "overrides": a.set,
    "backend": jax.default_backend(),
    "devices": n,
    "device": devices[0].device_kind,
    "machine": platform.machine(),
    "date": time.strftime("%Y-%m-%d"),
    "params": model_lib.param_count(flax.jax_utils.unreplicate(state.params)),
    "batch_size": config.train.batch_size,
    "steps": a.steps,
    "seconds": seconds,
    "steps_per_s": a.steps / seconds,
    "examples_per_s": examples / seconds,
    "compile_s": compile_s,
  }
  print(json.dumps(out, indent=1))
  Path(a.out).parent.mkdir(parents=True, exist_ok=True)
  Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
