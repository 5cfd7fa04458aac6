"""Input pipeline: examples -> fixed-shape, length-bucketed batches.

Batches are a pure function of (seed, step): epoch e is a permutation drawn
from fold(seed, e), cut into per-bucket batches whose order is shuffled too.
So a resumed run sees exactly the batches an uninterrupted run would, with
no iterator state to checkpoint, and every process of a multi-host job can
compute its own shard of the same global batch.

A batch is a dict of numpy arrays:
  fingerprints [B, T] uint32 ([B, T, 1 + K] with K token features),
  lengths [B] int32,
  targets [B, U] int32 (actions, EOS, then PAD), weights [B, U] float32;
packed batches (packing.py) add segment ids and positions, B being rows.
"""

import collections
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from pqrnn_jax import packing, projection
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.data import mixture, readers, synthetic

MTOP_DIR_ENV = "MTOP_DIR"


def default_mtop_dir() -> Path:
  """$MTOP_DIR, else ../shared/data/mtop beside the repository."""
  env = os.environ.get(MTOP_DIR_ENV)
  if env:
    return Path(env)
  return Path(__file__).resolve().parents[2] / "shared" / "data" / "mtop"


def _base_dir(data_cfg) -> Path:
  return Path(data_cfg.data_dir) if data_cfg.data_dir else default_mtop_dir()


def load_split(data_cfg, split: str):
  """Examples of one split ("train", "eval" or "test") as configured.

  data_cfg.source is "synthetic" (generated, sizes from the config),
  "files" (data_cfg.<split>_files, or the one data_cfg.<split>_file: specs
  of data/mixture.py, paths readers.read_examples accepts with an optional
  locale and ID slice; relative paths are taken under data_cfg.data_dir or
  $MTOP_DIR; several train files are mixed by data_cfg.train_weights or
  data_cfg.mixture_temperature) or "tfds"
  (the MTOP builder of data/mtop_tfds.py, language data_cfg.tfds_language,
  with data_dir or $MTOP_DIR as its manual_dir).
  """
  if data_cfg.source == "synthetic":
    sizes = data_cfg.synthetic_sizes
    return synthetic.splits(*sizes, seed=data_cfg.synthetic_seed)[split]
  if data_cfg.source == "tfds":
    from pqrnn_jax.data import mtop_tfds  # TF import: only when asked for.

    return mtop_tfds.load(
      data_cfg.tfds_language,
      split,
      manual_dir=_base_dir(data_cfg),
      data_dir=data_cfg.tfds_dir or None,
    )
  if data_cfg.source != "files":
    raise ValueError(
      f"config.data.source={data_cfg.source!r}: use 'synthetic', 'files' "
      "or 'tfds'"
    )
  specs = tuple(data_cfg.get(f"{split}_files") or ())
  specs = specs or (data_cfg[f"{split}_file"],)
  groups = [_read_source(data_cfg, split, spec) for spec in specs]
  if split == "train" and len(groups) > 1:
    return mixture.mix(
      groups, tuple(data_cfg.train_weights), data_cfg.mixture_temperature
    )
  return [e for g in groups for e in g]


def _read_source(data_cfg, split: str, spec: str):
  """Examples of one file spec (data/mixture.py: locale, ID slice)."""
  source = mixture.parse_spec(spec)
  base = _base_dir(data_cfg)
  path = Path(source.path)
  path = path if path.is_absolute() else base / path
  if not path.exists():
    raise FileNotFoundError(
      f"{split} data not found: {path}. Put MTOP under {base} (see "
      f"../shared/data/mtop/README.md for the layout), set ${MTOP_DIR_ENV}, "
      f"or set --config.data.data_dir / --config.data.{split}_file."
    )
  examples = readers.read_examples(path, skip_bad=data_cfg.skip_bad_rows)
  return mixture.select(examples, source)


@dataclasses.dataclass
class Encoded:
  """Examples as arrays, plus what could not be encoded and why."""

  fingerprints: np.ndarray  # [N, T] or, with token features, [N, T, 1 + K]
  lengths: np.ndarray  # [N] int32
  targets: np.ndarray  # [N, U] int32
  target_lengths: np.ndarray  # [N] int32, EOS included
  dropped: collections.Counter
  # cause -> the first example dropped for it.
  dropped_example: dict = dataclasses.field(default_factory=dict)
  # The kept examples' tokens, and the tokens of unlabelled utterances a
  # pre-trained table's vocabulary may cover (words only, never labels).
  tokens: list = dataclasses.field(default_factory=list, repr=False)
  unlabelled_tokens: list = dataclasses.field(default_factory=list, repr=False)

  def check_drops(self, total: int, max_fraction: float, what: str) -> None:
    """Raises when more than `max_fraction` of `total` rows were dropped,
    naming the commonest causes with an example row of each."""
    n = sum(self.dropped.values())
    if n <= max_fraction * total:
      return
    causes = "; ".join(
      f"{cause} x{count} (e.g. {self.dropped_example[cause].id}: "
      f"{self.dropped_example[cause].utterance[:60]!r})"
      for cause, count in self.dropped.most_common(3)
    )
    raise ValueError(
      f"{what}: {n} of {total} rows ({n / total:.1%}) cannot be encoded: "
      f"{causes}. Set --config.data.skip_unusable=True to train on the rest"
    )


def encode(
  examples,
  ontology,
  max_source_len: int,
  max_target_len: int,
  token_features=(),
):
  """Fingerprints and target actions; unusable rows are counted, not hidden.

  token_features: as config.model.token_features (projection.fingerprint).

  A row is dropped when its source is longer than max_source_len (its
  pointers would be cut), its actions do not fit max_target_len, a slot word
  is not a source token, or a label is not in the ontology.
  """
  kept, tgts, tlens = [], [], []
  dropped, first = collections.Counter(), {}
  for ex in examples:
    acts, cause = _actions(ex, ontology, max_source_len, max_target_len)
    if cause:
      dropped[cause] += 1
      first.setdefault(cause, ex)
      continue
    t = np.full(max_target_len, targets_lib.PAD_ID, np.int32)
    t[: len(acts)] = acts
    kept.append(ex.tokens), tgts.append(t), tlens.append(len(acts))
  if dropped:
    logging.warning(
      "dropped %d of %d examples: %s",
      sum(dropped.values()),
      len(examples),
      dict(dropped),
    )
  if not kept:
    raise ValueError(f"no usable example among {len(examples)}: {dropped}")
  fps, lens, _ = projection.featurize(kept, max_source_len, token_features)
  return Encoded(
    fps,
    lens,
    np.stack(tgts),
    np.asarray(tlens, np.int32),
    dropped,
    first,
    kept,
  )


def _actions(ex, ontology, max_source_len, max_target_len):
  """(target actions, None), or (None, why the example cannot be used)."""
  if len(ex.tokens) > max_source_len or not ex.tokens:
    return None, "source_length"
  try:
    acts = targets_lib.parse_to_actions(ex.parse, ex.tokens, ontology)
  except targets_lib.AlignmentError:
    return None, "alignment"
  except targets_lib.OntologyError:
    return None, "ontology"
  if len(acts) > max_target_len:
    return None, "target_length"
  return acts, None


def bucket_shapes(
  lengths, target_lengths, buckets: int, caps=(None, None), step: int = 4
):
  """(T_b, U_b) per bucket, chosen from the data to cut padding.

  The largest shape holds the longest source and target (rounded up to a
  multiple of `step`); each further shape, from the grid of multiples of
  `step`, is the one that most reduces the padded positions (T_b + U_b of
  the smallest shape an example fits), greedily. A pure function of the
  lengths, so every process and every resume gets the same shapes.

  Args:
    lengths: [N] source lengths.
    target_lengths: [N] target lengths (EOS included).
    buckets: how many shapes (one compiled train step each), >= 1.
    caps: (T_max, U_max) of the encoded arrays: no shape is wider.
  Returns:
    sorted [(T_b, U_b)], at most `buckets` of them.
  """
  if buckets < 1:
    raise ValueError(f"train.buckets={buckets}: need at least 1")
  t_n, u_n = np.asarray(lengths), np.asarray(target_lengths)

  def up(x, cap):
    x = max(step, -(-int(x) // step) * step)
    return x if cap is None else min(x, cap)

  top = (up(t_n.max(), caps[0]), up(u_n.max(), caps[1]))
  grid = [
    (t, u) for t in range(step, top[0], step) for u in range(step, top[1], step)
  ]
  grid += [(t, top[1]) for t in range(step, top[0], step)]
  grid += [(top[0], u) for u in range(step, top[1], step)]
  shapes = [top]
  cost = np.full(len(t_n), float(sum(top)))  # Padded positions per example.
  while len(shapes) < buckets:
    best, best_cost = None, cost
    for t, u in grid:
      if (t, u) in shapes:
        continue
      fits = (t_n <= t) & (u_n <= u)
      new = np.where(fits, np.minimum(cost, t + u), cost)
      if new.sum() < best_cost.sum():
        best, best_cost = (t, u), new
    if best is None:  # Every example already sits in its tightest shape.
      break
    shapes.append(best)
    cost = best_cost
  return sorted(shapes)


class Batches:
  """Deterministic, bucketed, fixed-shape batches indexed by global step.

  Attributes:
    steps_per_epoch: number of global batches in one pass over the data.
    tokens_per_batch: mean target tokens of a full global batch.
  """

  def __init__(
    self,
    enc: Encoded,
    batch_size: int,
    buckets: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    packed_vocab: int = 0,
    row_multiple: int = 2,
  ):
    if batch_size % process_count:
      raise ValueError(f"batch {batch_size} % processes {process_count} != 0")
    self.enc, self.batch_size, self.seed = enc, batch_size, seed
    self.pi, self.pc = process_index, process_count
    # Packed: random batches, examples packed into rows (packing.py) of one
    # (T_r, U_r); the row count, a multiple of row_multiple, varies.
    self.packed_vocab, self.row_multiple = packed_vocab, row_multiple
    self._packed_step, self._packed_rows = None, None
    caps = enc.fingerprints.shape[1], enc.targets.shape[1]
    if packed_vocab:
      buckets = 1
      self.row_shape = packing.row_shape(enc.lengths, enc.target_lengths)
    self.shapes = bucket_shapes(enc.lengths, enc.target_lengths, buckets, caps)
    # Smallest bucket that holds both the source and the target.
    fits = [
      (enc.lengths <= t) & (enc.target_lengths <= u) for t, u in self.shapes
    ]
    self.bucket_of = np.argmax(np.stack(fits), axis=0)
    self._epoch, self._plan = None, None
    self.steps_per_epoch = len(self._epoch_plan(0))
    # Target tokens of a full global batch, on average over the data.
    self.tokens_per_batch = float(batch_size * enc.target_lengths.mean())

  def _epoch_plan(self, epoch: int):
    """[(bucket, example indices)] for one epoch, in a seeded order."""
    if epoch == self._epoch:
      return self._plan
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(len(self.bucket_of))
    plan = []
    for b in range(len(self.shapes)):
      idx = order[self.bucket_of[order] == b]
      for i in range(0, len(idx), self.batch_size):
        plan.append((b, idx[i : i + self.batch_size]))
    plan = [plan[i] for i in rng.permutation(len(plan))]
    self._epoch, self._plan = epoch, plan
    return plan

  def _planned(self, step: int):
    """(bucket, example indices) of global batch `step`."""
    epoch, i = divmod(step, self.steps_per_epoch)
    return self._epoch_plan(epoch)[i]

  def shape(self, step: int) -> tuple[int, ...]:
    """(T_b, U_b) of global batch `step`; packed: (rows, T_r, U_r)."""
    if not self.packed_vocab:
      return self.shapes[self._planned(step)[0]]
    rows = packing.num_rows(len(self._rows(step)), self.row_multiple)
    return (rows, *self.row_shape)

  def _rows(self, step: int) -> list[list[int]]:
    """Packed: global batch `step`'s rows (packing.first_fit), kept for
    the call after shape(step)."""
    if self._packed_step != step:
      e, idx = self.enc, self._planned(step)[1]
      rows = packing.first_fit(
        e.lengths[idx], e.target_lengths[idx], self.row_shape
      )
      self._packed_step, self._packed_rows = step, rows
    return self._packed_rows

  def examples(self, step: int) -> int:
    """Real examples in global batch `step`."""
    return len(self._planned(step)[1])

  def __call__(self, step: int) -> dict:
    """This process's share of global batch `step`."""
    b, idx = self._planned(step)
    if self.packed_vocab:
      return packing.packed_batch(
        self.enc,
        idx,
        self._rows(step),
        self.row_shape,
        self.packed_vocab,
        self.row_multiple,
        self.pi,
        self.pc,
      )
    return make_batch(
      self.enc, idx, self.shapes[b], self.batch_size, self.pi, self.pc
    )


def make_batch(enc: Encoded, idx, shape, batch_size, pi=0, pc=1) -> dict:
  """Pads example indices to a full [batch_size] batch of `shape`.

  Filler rows have weight 0 (and length 1 so attention stays defined), so
  the last, short batch of a bucket trains on every real example.
  """
  t, u = shape
  full = np.zeros(batch_size, np.int64)
  full[: len(idx)] = idx
  real = np.arange(batch_size) < len(idx)
  share = slice(pi * batch_size // pc, (pi + 1) * batch_size // pc)
  full, real = full[share], real[share]
  weights = (enc.targets[full, :u] != targets_lib.PAD_ID) & real[:, None]
  return {
    "fingerprints": enc.fingerprints[full, :t],
    "lengths": np.where(real, enc.lengths[full], 1).astype(np.int32),
    "targets": np.where(real[:, None], enc.targets[full, :u], 0),
    "weights": weights.astype(np.float32),
  }


def shard(batch: dict, n: int) -> dict:
  """[B, ...] arrays -> [n, B / n, ...], one slice per local device."""
  return {k: x.reshape(n, -1, *x.shape[1:]) for k, x in batch.items()}
