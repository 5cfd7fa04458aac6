"""Sequence packing: several examples per batch row, so rows hold few pads.

A packed row holds whole examples one after another: their source tokens
in the source row, their actions in the target row. Segment ids (1, 2, ...
per row; 0 on pads) keep them apart in the model (model.Seq2Seq with
`packed`): the QRNN's convolution and pooling restart at each example, the
decoder's running mean and target positions restart, and cross-attention
and pointers see only the example's own source. Pointer actions are
renumbered to row positions (V + the example's offset + t). A packed batch
gives each example the scores it gets alone, up to float rounding, while a
random batch of MTOP en fills about 0.87 of its padded positions (length
buckets: 0.6).

Dims: R rows, T_r source positions per row, U_r target steps per row.
"""

import math

import jax.numpy as jnp
import numpy as np

from pqrnn_jax import targets as targets_lib

KEYS = ("source_segments", "target_segments", "target_positions")


def row_shape(lengths, target_lengths, step: int = 4) -> tuple[int, int]:
  """(T_r, U_r): U_r holds the longest target; T_r is U_r in the data's
  source/target proportion (so rows fill on both sides), and holds the
  longest source. Both rounded up to a multiple of `step`."""
  t_n, u_n = np.asarray(lengths), np.asarray(target_lengths)
  up = lambda x: max(step, step * math.ceil(x / step))
  u_r = up(u_n.max())
  return max(up(t_n.max()), up(u_r * t_n.mean() / u_n.mean())), u_r


def first_fit(lengths, target_lengths, shape) -> list[list[int]]:
  """Rows of positions into the given examples, by first-fit decreasing
  on the fuller side: a pure function of the lengths."""
  t_r, u_r = shape
  size = [
    t / t_r + u / u_r for t, u in zip(lengths, target_lengths, strict=True)
  ]
  order = sorted(range(len(size)), key=lambda i: (-size[i], i))
  rows, room = [], []
  for i in order:
    t, u = int(lengths[i]), int(target_lengths[i])
    for r, (tl, ul) in enumerate(room):
      if t <= tl and u <= ul:
        rows[r].append(i)
        room[r] = (tl - t, ul - u)
        break
    else:
      rows.append([i])
      room.append((t_r - t, u_r - u))
  return rows


def num_rows(n: int, multiple: int) -> int:
  """Rows of a batch that packs into n rows: rounded up to `multiple` (the
  devices' count must divide it), so steps come in a few shapes."""
  return multiple * math.ceil(max(n, 1) / multiple)


def packed_batch(enc, idx, rows, shape, vocab_size, multiple, pi=0, pc=1):
  """Examples `idx` of `enc` (input_pipeline.Encoded) laid out as `rows`
  (first_fit of their lengths) in rows of `shape` (T_r, U_r); this
  process's share of the rows.

  Returns the batch keys of input_pipeline (fingerprints [R, T_r(, 1 + K)],
  lengths [R] = source positions used, targets and weights [R, U_r]) plus
  KEYS, each [R, T_r] or [R, U_r] int32. Filler rows have weight 0.
  """
  t_r, u_r = shape
  n = num_rows(len(rows), multiple)
  fps = np.zeros((n, t_r, *enc.fingerprints.shape[2:]), enc.fingerprints.dtype)
  out = {
    k: np.zeros((n, t_r if k == "source_segments" else u_r), np.int32)
    for k in KEYS
  }
  tgt = np.full((n, u_r), targets_lib.PAD_ID, np.int32)
  lengths = np.ones(n, np.int32)
  for r, row in enumerate(rows):
    o = q = 0
    for seg, i in enumerate(row, 1):
      e, t, u = idx[i], enc.lengths[idx[i]], enc.target_lengths[idx[i]]
      fps[r, o : o + t] = enc.fingerprints[e, :t]
      acts = enc.targets[e, :u]
      tgt[r, q : q + u] = np.where(acts >= vocab_size, acts + o, acts)
      out["source_segments"][r, o : o + t] = seg
      out["target_segments"][r, q : q + u] = seg
      out["target_positions"][r, q : q + u] = np.arange(u)
      o, q = o + t, q + u
    lengths[r] = o
  out.update(
    fingerprints=fps,
    lengths=lengths,
    targets=tgt,
    weights=(out["target_segments"] > 0).astype(np.float32),
  )
  share = slice(pi * n // pc, (pi + 1) * n // pc)
  return {k: x[share] for k, x in out.items()}


def model_inputs(batch: dict):
  """The `packed` argument of model.Seq2Seq for a batch: its KEYS, or None
  for an unpacked batch."""
  if "source_segments" not in batch:
    return None
  return {k: batch[k] for k in KEYS}


def attention_mask(packed) -> jnp.ndarray:
  """[B, U, T] bool: target step u may read source position t (its own
  segment's real tokens)."""
  src, tgt = packed["source_segments"], packed["target_segments"]
  return (tgt[:, :, None] == src[:, None, :]) & (src[:, None, :] > 0)
