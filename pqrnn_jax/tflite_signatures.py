"""What an exported .tflite holds: its signatures, names and shapes.

One `encode_<t>` per length bucket t and one `decode_step` at T_max
(`file_signatures`); the shapes are the model's own `signatures(t)`, the
functions its `export_encode` / `export_decode_step`, which take T from
their inputs.
"""

import jax.numpy as jnp

from pqrnn_jax import models

# Source lengths below T_max that get their own encode: a parse runs at the
# smallest that fits, so a short utterance does not pay for T_max (MTOP en
# test: 92 % of utterances have <= 12 tokens, 99.9 % <= 24).
DEFAULT_BUCKETS = (12, 24)


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


def beam_step_name(k: int) -> str:
  """Name in the .tflite of the decode step over k hypotheses at once."""
  return f"decode_step_k{k}"


def parse_name(t: int) -> str:
  """Name in the .tflite of the one-call greedy parse of bucket length t."""
  return f"parse_{t}"


def beam_parse_name(k: int, t: int) -> str:
  """Name in the .tflite of the one-call beam-k parse of bucket length t."""
  return f"beam{k}_{t}"


SIGNATURE_SETS = ("steps", "parse", "all")


def file_signatures(
  max_len: int, buckets, parse_buckets=(), steps: bool = True, beam: int = 0
) -> dict[str, tuple[str, int]]:
  """{name in the .tflite: (signature kind, source length)}: one encode
  per bucket, one decode_step at T_max, one `parse_<t>` (parse_graph.py)
  per length in parse_buckets. The host loop pads its encoder outputs to
  T_max (pads are masked): the step's work barely depends on T (0.043 vs
  0.052 ms at T = 12 vs 40, int8), while each signature costs ~100 KB of
  op and quantization tables in the file. steps=False leaves out encode
  and decode_step (a file for one-call parses only); beam > 1 adds, with
  the steps, `decode_step_k<beam>` (kind "beam_step", with the beam for a
  length): the step of `beam` hypotheses in one call; with parse_buckets,
  a `beam<beam>_<t>` beside each `parse_<t>` (kind "beam_parse"): the
  whole beam search in one call."""
  names = {}
  if steps:
    names = {encode_name(t): ("encode", t) for t in buckets}
    names["decode_step"] = ("decode_step", max_len)
    if beam > 1:
      names[beam_step_name(beam)] = ("beam_step", beam)
  for t in parse_buckets:
    names[parse_name(t)] = ("parse", t)
    if beam > 1:
      names[beam_parse_name(beam, t)] = ("beam_parse", t)
  return names


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


def beam_step_specs(model_cfg, k: int) -> dict:
  """`decode_step_k<k>`: decode_step's inputs and outputs with k rows for
  the previous action, the decoder state and every output; the encoder's
  tensors and `step`, `length` stay one row (shared by the hypotheses)."""
  specs = signature_specs(model_cfg)
  rows = set(state_names(specs)) | {"prev_action"}
  wide = lambda n, sh, dt: (n, (k, *sh[1:]), dt)
  step = specs["decode_step"]
  return {
    "inputs": [wide(*x) if x[0] in rows else x for x in step["inputs"]],
    "outputs": [wide(*x) for x in step["outputs"]],
  }


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

  def beam_step(*args):
    """decode_step over K rows. pQRNN-MAtt takes them as K queries of its
    one cache; other models get the one-row inputs broadcast to K."""
    named = dict(zip(names, args, strict=True))
    k = named["prev_action"].shape[0]
    if cfg.arch != "pqrnn":
      wide = lambda x: jnp.broadcast_to(x, (k, *x.shape[1:]))
      named = {n: x if n == "step" else wide(x) for n, x in named.items()}
    return model.apply(variables, named, method="export_decode_step")

  return {"encode": encode, "decode_step": decode_step, "beam_step": beam_step}
