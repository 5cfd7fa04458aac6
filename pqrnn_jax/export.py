"""TFLite export: `encode` and `decode_step` signatures, builtin ops only.

  python -m pqrnn_jax.export --workdir DIR --out model.tflite \
      [--variant int8|float|dynamic] [--calibration 300]

writes model.tflite and model.json (the manifest: ontology, shapes, the
signatures' tensors) beside it; the manifest is also embedded in the file as
TFLite metadata "pqrnn_manifest". `tflite_runner.py` runs the decode loop.

Path (TOOLCHAIN.md 4.5, 5): the float graph (an AQT-trained model has the
same float parameters), QRNN pooling by recursive doubling (no loop),
batch 1 -> jax2tf -> SavedModel with an `encode_<t>` per length bucket t
and one `decode_step` (`file_signatures`) -> TFLite converter, default
flags; constants shared by the signatures are stored once.
"float"; "dynamic": int8 weights; "int8": full integer, int8 weights and
activations (float only at the inputs and outputs), ranges calibrated on
training utterances run through encode and teacher-forced decode steps.
The converter runs in a subprocess: full-int8 calibration segfaults on
some graphs (WHILE ops), and a crash must be an error, not a dead parent.

Why `encode` + `decode_step` and not the whole greedy decode in one
signature: unrolled, that graph holds U_max copies of the ~170-op step
(~11k ops at U_max = 64: ~4 MB of op tables at the ~0.4 KB per op we
measure, past the 3.5 MB budget before any weight) plus integer stack
logic; as a loop it is a WHILE op, which full-int8 calibration cannot
handle. The step signature keeps the tree constraints in host code (the
numpy twins of what decode.py jits), applied to float scores. The cache is
explicit: memory, pointer keys and per-layer keys/values (from `encode`),
and per-layer running sums (in and out of each step). The LSTM baseline
exports the same way: its cache is memory and pointer keys, its state the
decoder LSTM's (c, h); its encoder loops are unrolled over t.

Scores leave the graph unmasked, symbols and pointers apart (each with its
own int8 range): an in-graph -inf mask would ruin the calibrated ranges.
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import model as model_lib
from pqrnn_jax import models, projection
from pqrnn_jax.targets import EOS_ID, PAD_ID

VARIANTS = ("int8", "float", "dynamic")
# Source lengths below T_max that get their own encode/decode_step pair: a
# parse runs at the smallest that fits, so a short utterance does not pay
# for T_max (MTOP en: 96 % of test utterances have <= 12 tokens).
DEFAULT_BUCKETS = (12, 24)
METADATA_NAME = "pqrnn_manifest"
FORMAT = "pqrnn_jax.tflite/1"


def bucket_lengths(max_len: int, buckets=DEFAULT_BUCKETS) -> list[int]:
  """Source lengths with their own signatures: the buckets below T_max,
  sorted, then T_max itself (always there, so any input fits one)."""
  bad = [b for b in buckets if int(b) < 1]
  if bad:
    raise ValueError(f"buckets={tuple(buckets)}: lengths must be >= 1")
  return sorted({int(b) for b in buckets if int(b) < max_len} | {max_len})


def encode_name(t: int) -> str:
  """Name in the .tflite of the encode signature of bucket length t."""
  return f"encode_{t}"


def file_signatures(max_len: int, buckets) -> dict[str, tuple[str, int]]:
  """{name in the .tflite: (signature kind, source length)}: one encode
  per bucket, one decode_step at T_max. A parse pads its encoder outputs
  to T_max (pads are masked): the step's work barely depends on T (0.043
  vs 0.052 ms at T = 12 vs 40, int8), while each signature costs ~100 KB
  of op and quantization tables in the file."""
  names = {encode_name(t): ("encode", t) for t in buckets}
  return dict(names, decode_step=("decode_step", max_len))


def signature_specs(model_cfg, t: int | None = None) -> dict:
  """{signature: {"inputs"|"outputs": [(name, shape, dtype)]}}, batch 1,
  source length t (default T_max), as the model declares them."""
  cfg = model_cfg.for_export()
  return models.make_model(cfg).signatures(t)


def state_names(specs) -> list[str]:
  """Decoder state: what decode_step both takes and gives back (zeros at
  the first step)."""
  outs = {n for n, _, _ in specs["decode_step"]["outputs"]}
  return [n for n, _, _ in specs["decode_step"]["inputs"] if n in outs]


def signature_fns(model_cfg, params) -> dict:
  """Plain JAX functions of the signatures' inputs (positional, in the order
  of `signature_specs`) -> dict of outputs; parameters are constants. The
  same functions serve every source length (shapes come from the inputs)."""
  cfg = model_cfg.for_export()
  model = models.make_model(cfg)
  variables = {"params": params}
  names = [n for n, _, _ in model.signatures()["decode_step"]["inputs"]]

  def encode(fingerprints, length):
    return model.apply(variables, fingerprints, length, method="export_encode")

  def decode_step(*args):
    named = dict(zip(names, args, strict=True))
    return model.apply(variables, named, method="export_decode_step")

  return {"encode": encode, "decode_step": decode_step}


def calibration_samples(
  model_cfg, params, enc, n: int, seed=0, buckets=DEFAULT_BUCKETS
):
  """Representative data [(signature, {input: array})] from encoded
  training examples: per bucket, n encodes of utterances that fit it; n
  utterances' every teacher-forced decode step."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(enc.lengths))
  buckets = bucket_lengths(model_cfg.max_source_len, buckets)
  cfg = model_cfg.replace(quant="none")
  model, variables = models.make_model(cfg), {"params": params}
  encode = jax.jit(
    lambda f, n: model.apply(variables, f, n, method="export_encode")
  )
  step = jax.jit(
    lambda named: model.apply(variables, named, method="export_decode_step")
  )
  samples = []
  for b in buckets:
    idx = order[enc.lengths[order] <= b][:n]
    # Plus inputs of exactly b tokens (see `_joined`).
    fps, lengths = _joined(enc, order, b, max(n // 4, 8))
    fps = np.concatenate([enc.fingerprints[idx, :b].view(np.int32), fps])
    lengths = np.concatenate([enc.lengths[idx], lengths])
    samples += [
      (encode_name(b), {"fingerprints": f[None], "length": k[None]})
      for f, k in zip(fps, lengths, strict=True)
    ]
  idx = order[:n]
  fps, lengths = enc.fingerprints[idx].view(np.int32), enc.lengths[idx]
  encoded = {k: np.asarray(v) for k, v in encode(fps, lengths).items()}
  samples += _step_samples(
    model.signatures(),
    step,
    encoded,
    lengths,
    enc.targets[idx],
    enc.target_lengths[idx],
  )
  return samples


def _joined(enc, order, t: int, count: int):
  """`count` inputs of exactly t tokens, each utterances of `order` joined
  end to end ([count, t, ...] int32 fingerprints, lengths). Calibration
  needs them: the pooling's shifted slices reach positions that no real
  utterance fills (MTOP en has none over 32 tokens), and a slice that is
  zero over all samples gets a zero int8 scale, which aborts the
  interpreter."""
  rows, pos = [], 0
  for _ in range(count):
    parts, have = [], 0
    while have < t:
      j = order[pos % len(order)]
      pos += 1
      parts.append(enc.fingerprints[j, : enc.lengths[j]])
      have += int(enc.lengths[j])
    rows.append(np.concatenate(parts)[:t])
  fps = np.stack(rows).view(np.int32)
  return fps, np.full((count,), t, np.int32)


def _step_samples(specs, step, encoded, lengths, targets, tlens):
  """Every teacher-forced decode step of a batch, one sample per row."""
  prev = np.asarray(model_lib.shift_right(jnp.asarray(targets)))
  shapes = {n: sh for n, sh, _ in specs["decode_step"]["inputs"]}
  state = {
    k: np.zeros((len(lengths),) + tuple(shapes[k][1:]), np.float32)
    for k in state_names(specs)
  }
  samples = []
  for t in range(int(tlens.max())):
    named = dict(
      encoded,
      **state,
      prev_action=prev[:, t],
      step=np.full((len(lengths),), t, np.int32),
      length=lengths,
    )
    for j in np.flatnonzero(t < tlens):
      sample = {k: v[j : j + 1] for k, v in named.items()}
      samples.append(("decode_step", sample))
    out = step(named)
    state = {k: np.asarray(out[k]) for k in state}
  return samples


def save_saved_model(model_cfg, params, export_dir, buckets) -> list[str]:
  """jax2tf -> SavedModel with the signatures of `file_signatures`;
  returns their names."""
  import tensorflow as tf
  from jax.experimental import jax2tf

  fns = signature_fns(model_cfg, params)
  module = tf.Module()
  signatures = {}
  sigs = file_signatures(model_cfg.max_source_len, buckets)
  for name, (kind, t) in sigs.items():
    spec = [
      tf.TensorSpec(shape, getattr(tf, dt), name=n)
      for n, shape, dt in signature_specs(model_cfg, t)[kind]["inputs"]
    ]
    f_tf = tf.function(
      jax2tf.convert(fns[kind], with_gradient=False),
      input_signature=spec,
      autograph=False,
    )
    setattr(module, name, f_tf)
    signatures[name] = f_tf.get_concrete_function()
  tf.saved_model.save(module, str(export_dir), signatures=signatures)
  return list(signatures)


def convert_saved_model(export_dir, variant, calibration_path, out_path, keys):
  """TFLite converter on a SavedModel (meant to run in a subprocess);
  keys: the signature names, comma-separated. Identical constants of the
  buckets' subgraphs are stored once (the converter deduplicates buffers)."""
  import tensorflow as tf

  conv = tf.lite.TFLiteConverter.from_saved_model(
    str(export_dir), signature_keys=keys.split(",")
  )
  if variant != "float":
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
  if variant == "int8":
    samples = pickle.loads(Path(calibration_path).read_bytes())
    conv.representative_dataset = lambda: iter(samples)
  Path(out_path).write_bytes(conv.convert())


def _convert_in_subprocess(export_dir, variant, samples, out_path, keys):
  calib = Path(export_dir).with_suffix(".calibration.pkl")
  calib.write_bytes(pickle.dumps(samples or []))
  code = (
    "import sys; from pqrnn_jax.export import convert_saved_model as c; "
    "c(*sys.argv[1:])"
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-c", code, str(export_dir), variant, str(calib)]
  r = subprocess.run(
    cmd + [str(out_path), ",".join(keys)],
    capture_output=True,
    text=True,
    env=env,
  )
  if r.returncode != 0:
    how = f"signal {-r.returncode}" if r.returncode < 0 else r.returncode
    raise RuntimeError(
      f"TFLite conversion ({variant}) failed with {how}:\n{r.stderr[-3000:]}"
    )


def op_codes(tflite_bytes) -> dict[str, int]:
  """Operator name -> count over all subgraphs (custom ops as CUSTOM:x)."""
  from ai_edge_litert import schema_py_generated as schema

  m = schema.Model.GetRootAs(tflite_bytes, 0)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items()}
  codes = []
  for i in range(m.OperatorCodesLength()):
    oc = m.OperatorCodes(i)
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    name = names.get(code, str(code))
    if code == schema.BuiltinOperator.CUSTOM:
      name = f"CUSTOM:{(oc.CustomCode() or b'').decode()}"
    codes.append(name)
  counts = {}
  for g in range(m.SubgraphsLength()):
    sub = m.Subgraphs(g)
    for o in range(sub.OperatorsLength()):
      name = codes[sub.Operators(o).OpcodeIndex()]
      counts[name] = counts.get(name, 0) + 1
  return dict(sorted(counts.items()))


def check_builtin_only(ops: dict[str, int]) -> None:
  """Raises if any custom or Flex (select TF) op is present."""
  bad = [k for k in ops if k.startswith("CUSTOM") or "Flex" in k]
  if bad:
    raise ValueError(f"non-builtin ops in the model: {bad}")


def manifest(model_cfg, ontology, form: str, variant: str, buckets) -> dict:
  """What a device needs beside the .tflite (see README, On-device)."""
  max_len = model_cfg.max_source_len
  sigs = {}
  for name, (kind, t) in file_signatures(max_len, buckets).items():
    io = signature_specs(model_cfg, t)[kind]
    sigs[name] = {
      k: [[n, list(sh), dt] for n, sh, dt in v] for k, v in io.items()
    }
  return {
    "format": FORMAT,
    "projection_format": projection.FORMAT_VERSION,
    "variant": variant,
    "form": form,
    "max_source_len": model_cfg.max_source_len,
    # A parse runs "encode_<t>" of the smallest t here >= its token count,
    # then "decode_step" (at T_max) with the encoder outputs zero-padded.
    "buckets": list(buckets),
    "max_target_len": model_cfg.max_target_len,
    "ids": {"pad": PAD_ID, "eos": EOS_ID, "bos": EOS_ID},
    "fingerprint": "MurmurHash3_x86_32, seed 0, of the case-folded token's "
    "UTF-8 bytes; fed as int32 with the same 32 bits. With token_features, "
    "[T, 1 + K]: the word, then each feature's hash of name + '\\x1f' + "
    "value (projection.TOKEN_FEATURES)",
    "token_features": list(model_cfg.token_features),
    "ontology": ontology.to_dict(),
    "kinds": decode_lib.kinds_array(ontology).tolist(),
    "signatures": sigs,
  }


def embed_metadata(tflite_bytes, manifest_dict) -> bytes:
  """Adds the manifest JSON as TFLite metadata METADATA_NAME and drops the
  tensor and subgraph names: the converter names every intermediate after
  its JAX op path (~70 bytes each, ~10 % of the file), and the signatures
  address tensors by index under their own names."""
  from ai_edge_litert import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils

  model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
  for subgraph in model.subgraphs:
    subgraph.name = None
    for tensor in subgraph.tensors:
      tensor.name = None
  buf = schema.BufferT()
  buf.data = np.frombuffer(json.dumps(manifest_dict).encode(), np.uint8)
  model.buffers.append(buf)
  meta = schema.MetadataT()
  meta.name, meta.buffer = METADATA_NAME, len(model.buffers) - 1
  model.metadata = (model.metadata or []) + [meta]
  return flatbuffer_utils.convert_object_to_bytearray(model)


def _check_calibration(samples, max_len, buckets) -> None:
  """Raises unless every signature of the file has samples."""
  have = {name for name, _ in samples or ()}
  lack = [w for w in file_signatures(max_len, buckets) if w not in have]
  if lack:
    raise ValueError(
      f"variant 'int8' needs calibration samples for signatures {lack}: "
      f"make them with calibration_samples(..., buckets={buckets})"
    )


def export(
  model_cfg,
  params,
  ontology,
  out,
  *,
  variant="int8",
  form="decoupled",
  calibration=None,
  buckets=DEFAULT_BUCKETS,
) -> dict:
  """Writes `out` (.tflite) and its .json manifest; returns a summary.

  calibration: the representative data of `calibration_samples` at the
  same buckets (needed for variant "int8"). buckets: source lengths below
  T_max with their own signatures (see `bucket_lengths`).
  """
  buckets = bucket_lengths(model_cfg.max_source_len, buckets)
  if variant not in VARIANTS:
    raise ValueError(f"variant={variant!r}: choose one of {VARIANTS}")
  if variant == "int8":
    _check_calibration(calibration, model_cfg.max_source_len, buckets)
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    saved = Path(tmp, "saved_model")
    keys = save_saved_model(model_cfg, params, saved, buckets)
    _convert_in_subprocess(saved, variant, calibration, str(out), keys)
  ops = op_codes(out.read_bytes())
  check_builtin_only(ops)
  if "WHILE" in ops:
    raise ValueError("the exported graph has a WHILE op (a loop not unrolled)")
  man = manifest(model_cfg, ontology, form, variant, buckets)
  out.write_bytes(embed_metadata(out.read_bytes(), man))
  out.with_suffix(".json").write_text(json.dumps(man, indent=1) + "\n")
  return {"path": str(out), "bytes": out.stat().st_size, "ops": ops}


def calibration_from_config(
  config, model_cfg, params, ontology, n, buckets=DEFAULT_BUCKETS
):
  """Representative data from n random training utterances of `config`
  per bucket."""
  from pqrnn_jax import input_pipeline

  train = input_pipeline.load_split(config.data, "train")
  enc = input_pipeline.encode(
    train,
    ontology,
    model_cfg.max_source_len,
    model_cfg.max_target_len,
    model_cfg.token_features,
  )
  return calibration_samples(model_cfg, params, enc, n, config.seed, buckets)


def export_workdir(
  workdir,
  out,
  variant="int8",
  calibration=300,
  which="best",
  buckets=DEFAULT_BUCKETS,
):
  """Exports a training workdir's checkpoint; returns export's summary."""
  from pqrnn_jax import checkpoints

  model_cfg, ontology, params, config = checkpoints.load_for_inference(
    workdir, which
  )
  samples = None
  buckets = bucket_lengths(model_cfg.max_source_len, buckets)
  if variant == "int8":
    samples = calibration_from_config(
      config, model_cfg, params, ontology, calibration, buckets
    )
  return export(
    model_cfg,
    params,
    ontology,
    out,
    variant=variant,
    form=config.data.form,
    calibration=samples,
    buckets=buckets,
  )


def main(argv):
  from pqrnn_jax import cli

  f = cli.FLAGS
  cli.no_extra_args(argv)
  buckets = [int(b) for b in f.buckets]
  r = export_workdir(
    f.workdir, f.out, f.variant, f.calibration, f.checkpoint, buckets
  )
  print(json.dumps({k: r[k] for k in ("path", "bytes")}))
  print("ops:", " ".join(f"{k}x{v}" for k, v in r["ops"].items()))


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
  flags.DEFINE_string("out", None, "Output .tflite path.", required=True)
  flags.DEFINE_enum("variant", "int8", VARIANTS, "Quantization variant.")
  flags.DEFINE_integer(
    "calibration", 300, "Training utterances for int8 calibration."
  )
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
  flags.DEFINE_list(
    "buckets",
    [str(b) for b in DEFAULT_BUCKETS],
    "Source lengths below T_max with their own signatures (T_max always).",
  )
  cli.run(main, errors=(RuntimeError,))  # A failed conversion: one line.
