"""pQRNN-MAtt next to the LSTM seq2seq baseline: size, exact match, speed.

  python benchmarks/compare_lstm.py --pqrnn runs/mtop_en --lstm runs/lstm_en \
    --out benchmarks/results/compare_lstm_en.json [--tflite]

Both workdirs hold trained checkpoints (train.py with configs/mtop.py and
configs/lstm_mtop.py) on the same data. Per model:
- params; float32 bytes (4 per parameter); int8 bytes: with --tflite, the
  size of the full-int8 .tflite of pqrnn_jax/export.py (both models
  export), otherwise 1 byte per parameter;
- exact match etc. on the test split (greedy, constrained);
- training examples/s: the same batches (the pQRNN workdir's data and
  batch settings) through each model's pmapped train_step on one device,
  after a warm-up that compiles every bucket shape and one uncounted
  round; the two models alternate in rounds so that load on a shared
  machine hits both; median over rounds;
- decode latency per utterance: batch 1 greedy (constrained), from tokens
  (host fingerprinting included) to actions on the host, the models
  alternating per utterance; median and p90.
"""

import functools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import flax
import jax
import numpy as np
from absl import flags

from pqrnn_jax import (
  checkpoints,
  cli,
  evaluate,
  inference,
  input_pipeline,
  models,
  projection,
  train_state,
  train_step,
)
from pqrnn_jax import decode as decode_lib
from pqrnn_jax import devices as devices_lib
from pqrnn_jax import model as model_lib

NAMES = ("pqrnn", "lstm")

FLAGS = flags.FLAGS
flags.DEFINE_string("pqrnn", None, "pQRNN-MAtt workdir.", required=True)
flags.DEFINE_string("lstm", None, "LSTM baseline workdir.", required=True)
flags.DEFINE_string("out", "compare_lstm.json", "JSON written here.")
flags.DEFINE_string("checkpoint", "best", "'best' or 'latest'.")
flags.DEFINE_string("split", "test", "Split for exact match.")
flags.DEFINE_integer("max_examples", 0, "0: all.")
flags.DEFINE_integer("steps", 10, "Steps per round.")
flags.DEFINE_integer("rounds", 3, "Timed rounds.")
flags.DEFINE_integer("latency", 100, "Utterances.")
flags.DEFINE_bool("tflite", False, "Export int8 sizes.")


def load(workdir, which):
  """A dict with the model, its config, ontology, params and train config."""
  model_cfg, ontology, params, config = checkpoints.load_for_inference(
    workdir, which
  )
  return {
    "workdir": str(workdir),
    "cfg": model_cfg,
    "model": models.make_model(model_cfg),
    "ontology": ontology,
    "params": params,
    "config": config,
  }


def size_report(m, tflite: bool) -> dict:
  """Parameters, float32 and int8 bytes (from the .tflite where asked)."""
  n = models.param_count(m["params"])
  out = {
    "arch": m["cfg"].arch,
    "summary": models.summary(m["cfg"], m["params"]),
    "params": n,
    "params_by_block": model_lib.param_breakdown(m["params"]),
    "float32_bytes": 4 * n,
    "int8_bytes": n,
    "int8_bytes_source": "params (1 byte per parameter)",
  }
  if tflite:
    try:
      from pqrnn_jax import export

      with tempfile.TemporaryDirectory() as tmp:
        r = export.export_workdir(m["workdir"], Path(tmp, "m.tflite"), "int8")
      out["int8_bytes"] = r["bytes"]
      out["int8_bytes_source"] = "full-int8 .tflite (export.py)"
    except Exception as e:  # Reported in the JSON, not hidden.
      out["int8_bytes_source"] += f"; export failed: {type(e).__name__}: {e}"
  return out


def exact_match(m, examples, batch_size) -> dict:
  """MTOP metrics of greedy constrained decoding on `examples`."""
  parser = inference.Parser(
    m["cfg"],
    m["params"],
    m["ontology"],
    form=m["config"].data.form,
    batch_size=batch_size,
    config=m["config"],
  )
  return evaluate.evaluate_examples(parser, examples)["metrics"]


def _train_fn(m, config, devices):
  """(pmapped step, replicated state) of model `m` on `devices`."""
  state = train_state.TrainState.create(
    params=m["params"], tx=train_state.make_optimizer(m["config"].train)
  )
  loss_fn = train_step.make_loss_fn(m["model"], config.train.label_smoothing)
  step = jax.pmap(
    functools.partial(train_step.train_step, loss_fn=loss_fn),
    axis_name="batch",
    donate_argnums=devices_lib.donated_state(devices),
    devices=devices,
  )
  return step, flax.jax_utils.replicate(state, devices)


def train_throughput(loaded, config, steps, rounds) -> dict:
  """Examples/s of each model's train step on the same batches."""
  devices = jax.local_devices()[:1]
  train = input_pipeline.load_split(config.data, "train")
  t, u = config.model.max_source_len, config.model.max_target_len
  batches, runs = {}, {}
  for name, m in loaded.items():
    enc = input_pipeline.encode(
      train, m["ontology"], t, u, m["cfg"].token_features
    )
    batches[name] = input_pipeline.Batches(
      enc, config.train.batch_size, config.train.buckets, config.seed
    )
    runs[name] = _train_fn(m, config, devices)
  rng = flax.jax_utils.replicate(jax.random.key(0), devices)
  states = {k: v[1] for k, v in runs.items()}

  def run(name, first, n):
    """Runs n steps from global step `first`; returns (real examples, s)."""
    bs = [batches[name](first + i) for i in range(n)]
    bs = [jax.tree.map(lambda x: x[None], b) for b in bs]
    real = sum(int((b["weights"].sum(-1) > 0).sum()) for b in bs)
    t0 = time.perf_counter()
    for b in bs:
      states[name], sums = runs[name][0](states[name], b, rng)
    jax.block_until_ready((states[name], sums))
    return real, time.perf_counter() - t0

  # Warm-up: one step of each bucket shape, so that all are compiled.
  first_of_shape = {}
  for i in range(batches[NAMES[0]].steps_per_epoch):
    shape = batches[NAMES[0]](i)["targets"].shape
    first_of_shape.setdefault(shape, i)
  for name in loaded:
    for i in first_of_shape.values():
      run(name, i, 1)
  # Round 0 is not counted: the first timed steps ran slower in our runs.
  rates = {name: [] for name in loaded}
  for r in range(rounds + 1):
    for name in loaded:
      real, secs = run(name, r * steps, steps)
      if r:
        rates[name].append(real / secs)
  return {
    name: {
      "examples_per_s": float(np.median(v)),
      "rounds": [round(x, 1) for x in v],
      "steps_per_round": steps,
      "batch_size": config.train.batch_size,
    }
    for name, v in rates.items()
  }


def decode_latency(loaded, token_lists, warmup=3) -> dict:
  """Batch-1 greedy decode ms per utterance (median, p90), alternating."""
  fns = {}
  for name, m in loaded.items():
    fn = functools.partial(
      decode_lib.greedy_decode,
      m["model"],
      constrained=True,
      form=m["config"].data.form,
    )
    fns[name] = (jax.jit(fn), decode_lib.kinds_array(m["ontology"]))

  def once(name, tokens):
    m, (fn, kinds) = loaded[name], fns[name]
    t0 = time.perf_counter()
    fps, lengths = projection.fingerprint_batch(
      [tokens],
      m["cfg"].max_source_len,
      truncate=True,
      features=m["cfg"].token_features,
    )
    np.asarray(fn(m["params"], fps, lengths, kinds))
    return (time.perf_counter() - t0) * 1e3

  for name in loaded:
    for tokens in token_lists[:warmup]:
      once(name, tokens)
  ms = {name: [] for name in loaded}
  for tokens in token_lists:
    for name in loaded:
      ms[name].append(once(name, tokens))
  return {
    name: {
      "median_ms": float(np.median(v)),
      "p90_ms": float(np.percentile(v, 90)),
      "utterances": len(v),
    }
    for name, v in ms.items()
  }


def main(argv):
  cli.no_extra_args(argv)
  a = FLAGS

  loaded = {
    "pqrnn": load(a.pqrnn, a.checkpoint),
    "lstm": load(a.lstm, a.checkpoint),
  }
  config = loaded["pqrnn"]["config"]
  if loaded["lstm"]["config"].data.to_dict() != config.data.to_dict():
    print("warning: the two workdirs were trained on different data configs")
  examples = input_pipeline.load_split(config.data, a.split)
  if a.max_examples:
    examples = examples[: a.max_examples]
  load_avg = os.getloadavg()
  out = {
    "machine": {
      "backend": jax.default_backend(),
      "device": str(jax.local_devices()[0]),
      "cpus": os.cpu_count(),
      "processor": platform.processor(),
      "load_average_at_start": load_avg,
    },
    "split": a.split,
    "examples": len(examples),
  }
  for name, m in loaded.items():
    out[name] = size_report(m, a.tflite)
    out[name]["metrics"] = exact_match(m, examples, config.eval_batch_size)
  speed = train_throughput(loaded, config, a.steps, a.rounds)
  lat = decode_latency(loaded, [e.tokens for e in examples[: a.latency]])
  for name in loaded:
    out[name]["train"] = speed[name]
    out[name]["decode_latency"] = lat[name]

  print(f"{'':24}{'pQRNN-MAtt':>16}{'LSTM':>16}")
  for label, get in [
    ("params", lambda o: o["params"]),
    ("float32 MB", lambda o: o["float32_bytes"] / 1e6),
    ("int8 MB", lambda o: o["int8_bytes"] / 1e6),
    (f"{a.split} exact match", lambda o: o["metrics"]["exact_match"]),
    ("train examples/s", lambda o: o["train"]["examples_per_s"]),
    ("latency median ms", lambda o: o["decode_latency"]["median_ms"]),
    ("latency p90 ms", lambda o: o["decode_latency"]["p90_ms"]),
  ]:
    print(f"{label:24}" + "".join(f"{get(out[n]):>16.4g}" for n in NAMES))
  for n in NAMES:
    print(f"{n} int8 bytes: {out[n]['int8_bytes_source']}")
  print(f"load average at start: {load_avg}")
  Path(a.out).parent.mkdir(parents=True, exist_ok=True)
  Path(a.out).write_text(json.dumps(out, indent=1, default=str) + "\n")
  print(f"wrote {a.out}")


if __name__ == "__main__":
  cli.run(main)
