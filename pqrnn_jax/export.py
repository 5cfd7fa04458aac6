"""TFLite export: `encode` and `decode_step` signatures, builtin ops only.

  python -m pqrnn_jax.export --workdir DIR --out model.tflite \
      [--variant int8|float|dynamic] [--calibration 1000]

writes model.tflite and model.json (the manifest: ontology, shapes, the
signatures' tensors) beside it; the manifest is also embedded in the file as
TFLite metadata "pqrnn_manifest". `tflite_runner.py` runs the decode loop.

Path (TOOLCHAIN.md 4.5, 5): the float graph (an AQT-trained model has the
same float parameters), QRNN pooling by recursive doubling (no loop),
batch 1 -> jax2tf -> SavedModel with an `encode_<t>` per length bucket t
and one `decode_step` (`file_signatures`) -> TFLite converter, default
flags; constants shared by the signatures are stored once.
"float"; "dynamic": int8 weights; "int8": int8 weights and activations
(ranges calibrated on training utterances run through encode and
teacher-forced decode steps), float at the inputs, the outputs, the
decoder's running sums and its layer norms. The converter runs in a
subprocess: full-int8 calibration segfaults when it runs a WHILE op; a
crash must be an error.

`parse_<t>` (parse_graph.py) is the whole greedy parse in one call:
encode, then the step in a WHILE loop with the tree constraints as
tensors. int8 files calibrate that loop in pieces (loop_calibration.py)
and hold only the step signatures by default, whose host loop keeps the
constraints in host code (the numpy twins of what decode.py jits),
applied to float scores; unrolled instead, the loop would be U_max copies
of the ~170-op step (~4 MB of op tables). The cache is
explicit: memory, pointer keys and per-layer keys/values (from `encode`),
and per-layer running sums (in and out of each step). The LSTM baseline
exports the same way: its cache is memory and pointer keys, its state the
decoder LSTM's (c, h); its encoder loops are unrolled over t.

Scores leave the graph unmasked, symbols and pointers apart (each with its
own int8 range): an in-graph -inf mask would ruin the calibrated ranges.
"""

import json
import tempfile
from pathlib import Path

from pqrnn_jax import calibration as calibration_lib
from pqrnn_jax import decode as decode_lib
from pqrnn_jax import parse_graph, projection
from pqrnn_jax.targets import EOS_ID, PAD_ID
from pqrnn_jax.tflite_convert import convert_in_subprocess
from pqrnn_jax.tflite_file import (  # noqa: F401  (export.op_codes)
  METADATA_NAME,
  check_builtin_only,
  embed_metadata,
  op_codes,
)
from pqrnn_jax.tflite_signatures import (
  DEFAULT_BUCKETS,
  SIGNATURE_SETS,
  beam_step_specs,
  bucket_lengths,
  file_signatures,
  signature_fns,
  signature_specs,
  state_names,
)

VARIANTS = ("int8", "float", "dynamic")
# The signature set of each variant's file unless told (`export`).
DEFAULT_SIGNATURES = {"int8": "steps", "dynamic": "parse", "float": "all"}
# Beam size N of a file's batched step `decode_step_k<N>` and one-call
# `beam<N>_<t>`; 0: none. The dynamic file (parse signatures) ships beam 4
# in one call: within 3.5 MB since subgraphs share their quantization
# vectors. Off for int8: its batched step saves 19 % and its own int8
# ranges change 7 % of beam parses (docs/RESULTS.md).
DEFAULT_BEAM = {"int8": 0, "dynamic": 4, "float": 0}
FORMAT = "pqrnn_jax.tflite/1"


def _specs(model_cfg, kind: str, t: int) -> dict:
  """{"inputs"|"outputs": [(name, shape, dtype)]} of one signature."""
  if kind in ("parse", "beam_parse"):
    return parse_graph.parse_specs(model_cfg, t)
  if kind == "beam_step":  # t is the beam.
    return beam_step_specs(model_cfg, t)
  return signature_specs(model_cfg, t)[kind]


def save_saved_model(
  model_cfg,
  params,
  export_dir,
  buckets,
  parse_buckets=(),
  ontology=None,
  form="decoupled",
  steps=True,
  beam=0,
) -> list[str]:
  """jax2tf -> SavedModel with the signatures of `file_signatures`;
  returns their names. `parse_<t>` needs the ontology (symbol kinds)."""
  import tensorflow as tf
  from jax.experimental import jax2tf

  fns = signature_fns(model_cfg, params)
  if parse_buckets:
    kinds = decode_lib.kinds_array(ontology)
    fns["parse"] = parse_graph.parse_fn(model_cfg, params, kinds, form)
    if beam > 1:
      fns["beam_parse"] = parse_graph.beam_fn(
        model_cfg, params, kinds, form, beam
      )
  module = tf.Module()
  signatures = {}
  max_len = model_cfg.max_source_len
  sigs = file_signatures(max_len, buckets, parse_buckets, steps, beam)
  for name, (kind, t) in sigs.items():
    spec = [
      tf.TensorSpec(shape, getattr(tf, dt), name=n)
      for n, shape, dt in _specs(model_cfg, kind, t)["inputs"]
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


def manifest(
  model_cfg,
  ontology,
  form: str,
  variant: str,
  buckets,
  parse_buckets=(),
  steps=True,
  beam=0,
) -> dict:
  """What a device needs beside the .tflite (see README, On-device)."""
  max_len = model_cfg.max_source_len
  sigs = {}
  named = file_signatures(max_len, buckets, parse_buckets, steps, beam)
  for name, (kind, t) in named.items():
    io = _specs(model_cfg, kind, t)
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
    # "parse_<t>" for these t: the whole greedy parse in one call.
    "parse_buckets": list(parse_buckets),
    # "decode_step_k<beam>": the step of `beam` hypotheses in one call.
    "beam_step": beam if steps and beam > 1 else 0,
    # "beam<beam>_<t>" for each parse bucket t: a beam search in one call.
    "beam_parse": beam if parse_buckets and beam > 1 else 0,
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


def _what_to_export(variant: str, signatures, beam: int):
  """(step signatures?, parse signatures?, batched beam) of a file, or a
  one-line error for a combination the converter cannot make."""
  if variant not in VARIANTS:
    raise ValueError(f"variant={variant!r}: choose one of {VARIANTS}")
  which = signatures or DEFAULT_SIGNATURES[variant]
  if which not in SIGNATURE_SETS:
    raise ValueError(f"signatures={which!r}: choose one of {SIGNATURE_SETS}")
  steps, parse = which != "parse", which != "steps"
  beam = DEFAULT_BEAM[variant] if beam is None else beam
  return steps, parse, beam if beam > 1 else 0


def _checked_ops(path, loops: int) -> dict:
  """The file's op counts; raises on a non-builtin op or a stray loop."""
  ops = op_codes(Path(path).read_bytes())
  check_builtin_only(ops)
  if ops.get("WHILE", 0) != loops:
    raise ValueError("the exported graph has a WHILE op (a loop not unrolled)")
  return ops


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
  signatures=None,
  beam=None,
  float_ops=(),
) -> dict:
  """Writes `out` (.tflite) and its .json manifest; returns a summary.

  calibration: the representative data of
  `calibration.calibration_samples` at the same buckets (needed for
  variant "int8"). buckets: source lengths below T_max with their own
  signatures (see `tflite_signatures.bucket_lengths`). signatures: "steps"
  (encode_<t> + decode_step: the host loop and beam search), "parse"
  (parse_<t>: one-call greedy parses) or "all"; None: "steps" for int8
  (its loops: loop_calibration.py), "parse" for dynamic (the on-device
  file within 3.5 MB), "all" for float. beam > 1: add `decode_step_k<beam>`
  and a `beam<beam>_<t>` beside each `parse_<t>` (None: DEFAULT_BEAM).
  float_ops: int8: TFLite op names kept in float (e.g. "SOFTMAX")."""
  buckets = bucket_lengths(model_cfg.max_source_len, buckets)
  steps, parse, beam = _what_to_export(variant, signatures, beam)
  state = state_names(signature_specs(model_cfg))
  if variant == "int8":
    calibration_lib.check(calibration, model_cfg.max_source_len, buckets, beam)
  parse_buckets = buckets if parse else []
  if variant == "dynamic":  # Tables in int8 (int8 files lose accuracy).
    model_cfg = model_cfg.replace(one_hot_lookup=True)
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    saved = Path(tmp, "saved_model")
    keys = save_saved_model(
      model_cfg,
      params,
      saved,
      buckets,
      parse_buckets,
      ontology,
      form,
      steps,
      beam,
    )
    convert_in_subprocess(
      saved, variant, calibration, str(out), keys, float_ops, state
    )
  ops = _checked_ops(out, len(parse_buckets) * (2 if beam > 1 else 1))
  man = manifest(
    model_cfg, ontology, form, variant, buckets, parse_buckets, steps, beam
  )
  out.write_bytes(embed_metadata(out.read_bytes(), man))
  out.with_suffix(".json").write_text(json.dumps(man, indent=1) + "\n")
  return {"path": str(out), "bytes": out.stat().st_size, "ops": ops}


def export_workdir(
  workdir,
  out,
  variant="int8",
  calibration=calibration_lib.DEFAULT_UTTERANCES,
  which="best",
  buckets=DEFAULT_BUCKETS,
  signatures=None,
  beam=None,
  float_ops=(),
):
  """Exports a training workdir's checkpoint; returns export's summary."""
  from pqrnn_jax import checkpoints

  model_cfg, ontology, params, config = checkpoints.load_for_inference(
    workdir, which
  )
  samples = None
  if variant == "int8":
    # Beam states only for a batched step (a file with the steps).
    steps, _, k = _what_to_export(variant, signatures, beam)
    samples = calibration_lib.from_config(
      config, model_cfg, params, ontology, calibration, buckets, k * steps
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
    signatures=signatures,
    beam=beam,
    float_ops=float_ops,
  )


def main(argv):
  from pqrnn_jax import cli

  f = cli.FLAGS
  cli.no_extra_args(argv)
  buckets = [int(b) for b in f.buckets]
  r = export_workdir(
    f.workdir,
    f.out,
    f.variant,
    f.calibration,
    f.checkpoint,
    buckets,
    f.signatures,
    f.beam_step,
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
    "calibration",
    calibration_lib.DEFAULT_UTTERANCES,
    "Training utterances for int8 calibration.",
  )
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
  flags.DEFINE_list(
    "buckets",
    [str(b) for b in DEFAULT_BUCKETS],
    "Source lengths below T_max with their own signatures (T_max always).",
  )
  flags.DEFINE_enum(
    "signatures",
    None,
    list(SIGNATURE_SETS),
    "steps: encode_<t> + decode_step (host loop, beam); parse: parse_<t> "
    "(one-call greedy); all. Default: int8 steps, dynamic parse, float all.",
  )
  flags.DEFINE_integer(
    "beam_step",
    None,
    "Beam size with its own signatures: decode_step_k<N> (step "
    "signatures: N hypotheses in one call per step) and beam<N>_<t> (parse "
    "signatures: the whole beam search in one call); 0: none. Default: 4 "
    "for dynamic, 0 for int8 and float.",
    lower_bound=0,
  )
  cli.run(main, errors=(RuntimeError,))  # A failed conversion: one line.
