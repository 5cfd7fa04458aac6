"""Sequence packing: rows hold whole examples, and a packed batch scores
each example as it scores alone."""

import jax
import numpy as np
import pytest

from pqrnn_jax import input_pipeline, models, packing, targets, train_step
from pqrnn_jax import model as model_lib
from pqrnn_jax.data import synthetic


@pytest.fixture(scope="module")
def encoded():
  exs = synthetic.generate(120, seed=5)
  ont = targets.Ontology.build(e.parse for e in exs)
  return len(ont), input_pipeline.encode(exs, ont, 24, 32)


def _segments(batch):
  """(row, segment id, source slice, target slice) of every packed example."""
  out = []
  for r in range(batch["targets"].shape[0]):
    for seg in range(1, batch["target_segments"][r].max() + 1):
      (src,) = np.nonzero(batch["source_segments"][r] == seg)
      (tgt,) = np.nonzero(batch["target_segments"][r] == seg)
      out.append(
        (r, seg, slice(src[0], src[-1] + 1), slice(tgt[0], tgt[-1] + 1))
      )
  return out


def test_rows_hold_each_example_whole_with_pointers_moved(encoded):
  v, enc = encoded
  idx = np.arange(20, 52)
  shape = packing.row_shape(enc.lengths, enc.target_lengths)
  rows = packing.first_fit(enc.lengths[idx], enc.target_lengths[idx], shape)
  batch = packing.packed_batch(enc, idx, rows, shape, v, multiple=4)
  assert batch["targets"].shape[0] % 4 == 0
  assert batch["fingerprints"].shape[1:] == (shape[0],)
  segs = _segments(batch)
  assert len(segs) == len(idx)
  found = []
  for r, _, src, tgt in segs:
    fps = batch["fingerprints"][r, src]
    e = next(
      i
      for i in idx
      if np.array_equal(enc.fingerprints[i, : len(fps)], fps)
      and enc.lengths[i] == len(fps)
    )
    acts = batch["targets"][r, tgt]
    want = enc.targets[e, : enc.target_lengths[e]]
    np.testing.assert_array_equal(
      np.where(acts >= v, acts - src.start, acts), want
    )
    np.testing.assert_array_equal(
      batch["target_positions"][r, tgt], np.arange(len(want))
    )
    found.append(e)
  assert sorted(found) == sorted(idx)
  assert batch["weights"].sum() == enc.target_lengths[idx].sum()
  # The segments follow each other from the row's start: no gaps.
  for r in range(batch["targets"].shape[0]):
    used = batch["target_segments"][r] > 0
    assert not np.any(used[1:] & ~used[:-1])


def test_packed_batches_are_a_function_of_step_and_cover_an_epoch(encoded):
  v, enc = encoded
  a = input_pipeline.Batches(enc, 16, 3, seed=0, packed_vocab=v, row_multiple=2)
  b = input_pipeline.Batches(enc, 16, 3, seed=0, packed_vocab=v, row_multiple=2)
  tokens = 0.0
  for step in range(a.steps_per_epoch):
    x, y = a(step), b(step)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
    assert x["targets"].shape[0] == a.shape(step)[0]
    assert x["targets"].shape[0] < 16  # Fewer rows than examples.
    tokens += x["weights"].sum()
  assert tokens == enc.target_lengths.sum()


def _tiny(v):
  return model_lib.ModelConfig(
    vocab_size=v,
    projection_size=32,
    bottleneck=16,
    qrnn_hidden=8,
    decoder_layers=2,
    heads=2,
    ffn=24,
    max_source_len=24,
    max_target_len=32,
    dropout=0.0,
    zoneout=0.0,
  )


@pytest.mark.parametrize("pooling", ["scan", "doubling"])
def test_packed_scores_and_loss_equal_one_example_per_row(encoded, pooling):
  v, enc = encoded
  cfg = _tiny(v).replace(pooling=pooling)
  model = model_lib.Seq2Seq(cfg)
  params = models.init_params(cfg, jax.random.key(0))
  idx = np.arange(10)
  shape = packing.row_shape(enc.lengths, enc.target_lengths)
  rows = packing.first_fit(enc.lengths[idx], enc.target_lengths[idx], shape)
  packed = packing.packed_batch(enc, idx, rows, shape, v, multiple=2)
  plain = input_pipeline.make_batch(enc, idx, (24, 32), len(idx))

  def scores(b):
    inputs = model_lib.shift_right(b["targets"])
    kw = train_step.packed_kwargs(b)
    s = model.apply(
      {"params": params}, b["fingerprints"], b["lengths"], inputs, **kw
    )
    return np.asarray(s)

  sp, su = scores(packed), scores(plain)
  assert len(_segments(packed)) == len(idx) and packed["targets"].shape[0] < 10
  for r, _, src, tgt in _segments(packed):
    t = src.stop - src.start
    i = next(
      i
      for i in range(len(idx))
      if plain["lengths"][i] == t
      and np.array_equal(
        plain["fingerprints"][i, :t], packed["fingerprints"][r, src]
      )
    )
    u = tgt.stop - tgt.start
    got = np.concatenate(
      [sp[r, tgt, :v], sp[r, tgt, v + src.start : v + src.stop]], axis=-1
    )
    np.testing.assert_allclose(got, su[i, :u, : v + t], rtol=1e-4, atol=1e-4)
    # Pointers into the other examples of the row are impossible.
    outside = np.ones(sp.shape[-1] - v, bool)
    outside[src] = False
    assert np.all(np.isneginf(sp[r, tgt, v:][:, outside]))
  lp = train_step.loss_sums(sp, packed["targets"], packed["weights"], 0.1)
  lu = train_step.loss_sums(su, plain["targets"], plain["weights"], 0.1)
  for k in lp:
    np.testing.assert_allclose(float(lp[k]), float(lu[k]), rtol=1e-5)
