"""Representative data for full-int8 conversion: encodes per length
bucket and the float model's own greedy decode steps, from training
utterances."""

import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import decode, models
from pqrnn_jax import model as model_lib
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.tflite_signatures import (
  DEFAULT_BUCKETS,
  beam_step_name,
  bucket_lengths,
  encode_name,
  file_signatures,
  state_names,
)

# Training utterances the int8 calibration runs by default: on en eval the
# packed 7k model's int8 file scored 76.60 with 300, 77.14 with 1,000 and
# 76.91 with 3,000 (docs/RESULTS.md, "On-device").
DEFAULT_UTTERANCES = 1000


def calibration_samples(
  model_cfg,
  params,
  enc,
  kinds,
  n: int,
  seed=0,
  buckets=DEFAULT_BUCKETS,
  beam: int = 0,
):
  """Representative data [(signature, {input: array})] from encoded
  training examples: per bucket, n encodes of utterances that fit it
  (`parse_<t>` loops are calibrated on these too, loop_calibration.py);
  and every step of the float model's greedy parse of each of them,
  from its bucket's encoding zero-padded to T_max, as the host loop
  runs it. The host loop's `decode_step` and the loops then see the same
  states, hence get the same int8 ranges, and parse alike. kinds: the
  ontology's `decode.kinds_array` (the tree constraints). beam > 1: also
  `decode_step_k<beam>` on the beam search's own hypotheses, step by
  step, as the host beam and `beam<beam>_<t>` run them."""
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
  samples, seen = [], set()
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
    # Each utterance's steps once, from its smallest bucket.
    new = np.ones(len(fps), bool)
    new[: len(idx)] = ~np.isin(idx, list(seen))
    seen |= set(idx.tolist())
    fps, lengths = fps[new], lengths[new]
    actions, tlens = _greedy(model, params, fps, lengths, kinds)
    encoded = {k: np.asarray(v) for k, v in encode(fps, lengths).items()}
    padded, rows = _padded_rows(model.signatures(), encoded, lengths)
    samples += _step_samples(
      model.signatures(), step, padded, rows, actions, tlens
    )
    if beam > 1:
      samples += _beam_samples(model, params, fps, lengths, kinds, rows, beam)
  return samples


def _greedy(model, params, fps, lengths, kinds):
  """The float model's constrained greedy actions [N, U] and the number
  of decode steps each runs (no step runs for the EOS owed once the
  root has closed)."""
  actions = np.asarray(
    decode.greedy_decode(model, params, fps, lengths, jnp.asarray(kinds))
  )
  steps = (actions != targets_lib.PAD_ID) & (actions != targets_lib.EOS_ID)
  return actions, steps.sum(axis=1)


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


def _padded_rows(specs, encoded, lengths):
  """The encodings (at a bucket's length) zero-padded to T_max, as
  decode_step takes them: ({input: [N, ...]}, per utterance its [1, ...]
  views of those). A row's samples share its arrays, which pickle then
  stores once (the samples go to the converter's process as a pickle,
  and the encoding is most of a sample's bytes)."""
  shapes = {n: sh for n, sh, _ in specs["decode_step"]["inputs"]}
  padded = {"length": lengths}
  for k, x in encoded.items():
    padded[k] = np.zeros((len(lengths),) + tuple(shapes[k][1:]), np.float32)
    padded[k][tuple(slice(0, d) for d in x.shape)] = x
  return padded, [
    {k: v[j : j + 1] for k, v in padded.items()} for j in range(len(lengths))
  ]


def _step_samples(specs, step, padded, rows, targets, tlens):
  """Every decode step of a batch fed `targets` (teacher-forced), one
  sample per row of `_padded_rows`."""
  prev = np.asarray(model_lib.shift_right(jnp.asarray(targets)))
  shapes = {n: sh for n, sh, _ in specs["decode_step"]["inputs"]}
  state = {
    k: np.zeros((len(rows),) + tuple(shapes[k][1:]), np.float32)
    for k in state_names(specs)
  }
  samples = []
  for t in range(int(tlens.max())):
    named = dict(
      padded,
      **state,
      prev_action=prev[:, t],
      step=np.full(len(rows), t, np.int32),
    )
    for j in np.flatnonzero(t < tlens):
      sample = dict(rows[j])
      for k in (*state, "prev_action", "step"):
        sample[k] = named[k][j : j + 1]
      samples.append(("decode_step", sample))
    out = step(named)
    state = {k: np.asarray(out[k]) for k in state}
  return samples


def _beam_samples(model, params, fps, lengths, kinds, rows, k, alpha=0.6):
  """`decode_step_k<k>` samples: the k hypotheses of `decode.beam_search`
  (GNMT alpha: the files', parse_graph.beam_fn) at every step that the
  one-call beam runs (until no live hypothesis can beat the best finished
  one), over each row of `_padded_rows`."""
  names = state_names(model.signatures())
  samples, chunk = [], 256  # The trace holds U steps of every hypothesis.
  for c in range(0, len(lengths), chunk):
    part = slice(c, c + chunk)
    _, _, (prev, sums, logp, fin) = decode.beam_search(
      model,
      params,
      fps[part],
      lengths[part],
      jnp.asarray(kinds),
      beam_size=k,
      length_penalty=alpha,
      trace=True,
    )
    u = prev.shape[0]
    best = np.max(np.asarray(logp), axis=2)  # [U, B]
    bound = best / decode.gnmt_penalty(u, alpha)
    running = np.isfinite(best) & (bound > np.asarray(fin))
    running = np.cumprod(running, axis=0).astype(bool)  # The loop stops.
    prev = np.asarray(prev).reshape(u, -1, k)
    sums = [np.asarray(x).reshape(u, -1, k, x.shape[-1]) for x in sums]
    for t, j in zip(*np.nonzero(running), strict=True):
      sample = dict(
        rows[c + j], prev_action=prev[t, j], step=np.array([t], np.int32)
      )
      sample.update({n: x[t, j] for n, x in zip(names, sums, strict=True)})
      samples.append((beam_step_name(k), sample))
  return samples


def check(samples, max_len, buckets, beam=0) -> None:
  """Raises unless every signature of the file has samples."""
  have = {name for name, _ in samples or ()}
  want = file_signatures(max_len, buckets, beam=beam)
  lack = [w for w in want if w not in have]
  if lack:
    raise ValueError(
      f"variant 'int8' needs calibration samples for signatures {lack}: "
      f"make them with calibration_samples(..., buckets={buckets})"
      + (f" and beam={beam}" if beam > 1 else "")
    )


def from_config(
  config, model_cfg, params, ontology, n, buckets=DEFAULT_BUCKETS, beam=0
):
  """Representative data from n random training utterances of `config`
  per bucket (beam: as calibration_samples')."""
  from pqrnn_jax import input_pipeline

  train = input_pipeline.load_split(config.data, "train")
  enc = input_pipeline.encode(
    train,
    ontology,
    model_cfg.max_source_len,
    model_cfg.max_target_len,
    model_cfg.token_features,
  )
  kinds = decode.kinds_array(ontology)
  return calibration_samples(
    model_cfg, params, enc, kinds, n, config.seed, buckets, beam
  )
