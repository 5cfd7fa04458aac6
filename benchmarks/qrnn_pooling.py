"""Wall time of the three fo-pooling implementations (scan, associative,
unrolled), forward and forward+backward, on the default backend.

  python benchmarks/qrnn_pooling.py \
    --out benchmarks/results/qrnn_pooling_cpu.json

Prints a table and writes JSON. Times are medians over repeats of a jitted
call after a warm-up (compile time reported apart).
"""

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from pqrnn_jax import cli, qrnn

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_integer("hidden", 128, "Hidden size H.")
flags.DEFINE_list("lengths", ["16", "32", "64", "128"], "Sequence lengths T.")
flags.DEFINE_integer("repeats", 20, "Timed calls per measurement.")
flags.DEFINE_string("out", "qrnn_pooling.json", "JSON written here.")


def _time(fn, *args, repeats):
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), compile_s


def bench(impl, b, t, h, repeats):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  z = jnp.tanh(jax.random.normal(k1, (b, t, h)))
  f = jax.nn.sigmoid(jax.random.normal(k2, (b, t, h)))
  lengths = jax.random.randint(k3, (b,), t // 2, t + 1)
  mask = jnp.arange(t)[None] < lengths[:, None]

  def fwd(z, f):
    return qrnn.fo_pool(z, f, mask, False, impl) + qrnn.fo_pool(
      z, f, mask, True, impl
    )

  grad = jax.grad(lambda z, f: fwd(z, f).sum(), argnums=(0, 1))
  f_s, f_c = _time(jax.jit(fwd), z, f, repeats=repeats)
  g_s, g_c = _time(jax.jit(grad), z, f, repeats=repeats)
  return {
    "impl": impl,
    "batch": b,
    "T": t,
    "H": h,
    "forward_ms": f_s * 1e3,
    "forward_backward_ms": g_s * 1e3,
    "compile_forward_s": f_c,
    "compile_forward_backward_s": g_c,
  }


def main(argv):
  cli.no_extra_args(argv)
  a = FLAGS
  rows = []
  print(
    f"{'impl':12s} {'T':>4s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} "
    f"{'compile s':>10s}"
  )
  for t in map(int, a.lengths):
    for impl in sorted(qrnn.POOLING):
      r = bench(impl, a.batch, t, a.hidden, a.repeats)
      rows.append(r)
      print(
        f"{impl:12s} {t:4d} {r['forward_ms']:9.3f} "
        f"{r['forward_backward_ms']:11.3f} "
        f"{r['compile_forward_s'] + r['compile_forward_backward_s']:10.2f}"
      )
  out = {
    "benchmark": "qrnn_pooling",
    "backend": jax.default_backend(),
    "device": str(jax.devices()[0].device_kind),
    "jax": jax.__version__,
    "machine": cli.machine(),
    "cpus": len(jax.devices()),
    "date": time.strftime("%Y-%m-%d"),
    "note": "both directions per call",
    "rows": rows,
  }
  Path(a.out).parent.mkdir(parents=True, exist_ok=True)
  Path(a.out).write_text(json.dumps(out, indent=1))
  print(f"wrote {a.out}")


if __name__ == "__main__":
  cli.run(main)
