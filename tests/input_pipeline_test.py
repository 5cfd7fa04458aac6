"""Input pipeline: encoding, buckets, determinism by step, process shards."""

import numpy as np
import pytest

from pqrnn_jax import input_pipeline, targets
from pqrnn_jax.data import synthetic
from pqrnn_jax.data.example import Example


@pytest.fixture(scope="module")
def encoded():
  exs = synthetic.generate(120, seed=3)
  ont = targets.Ontology.build(e.parse for e in exs)
  return ont, input_pipeline.encode(exs, ont, 24, 32)


def test_encode_counts_what_it_drops():
  exs = [
    Example("a", "", "", "x", ("x",), "[IN:A [SL:B x ] ]"),
    Example("b", "", "", "x", ("x",), "[IN:A [SL:B y ] ]"),
    Example("c", "", "", "x y z", ("x", "y", "z"), "[IN:A ]"),
    Example("d", "", "", "x", ("x",), "[IN:Q ]"),
  ]
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  enc = input_pipeline.encode(exs, ont, 2, 8)
  assert len(enc.lengths) == 1
  assert enc.dropped == {"alignment": 1, "source_length": 1, "ontology": 1}
  assert enc.targets[0, enc.target_lengths[0] - 1] == targets.EOS_ID


def test_batches_are_a_function_of_step(encoded):
  _, enc = encoded
  a = input_pipeline.Batches(enc, 16, 2, seed=0)
  b = input_pipeline.Batches(enc, 16, 2, seed=0)
  for step in [5, 0, a.steps_per_epoch + 1, 3]:
    x, y = a(step), b(step)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  c = input_pipeline.Batches(enc, 16, 2, seed=1)
  assert not np.array_equal(a(0)["fingerprints"], c(0)["fingerprints"])


def test_one_epoch_covers_every_example_once(encoded):
  _, enc = encoded
  bt = input_pipeline.Batches(enc, 16, 3, seed=0)
  seen = 0.0
  for step in range(bt.steps_per_epoch):
    batch = bt(step)
    t, u = batch["fingerprints"].shape[1], batch["targets"].shape[1]
    assert (t, u) in bt.shapes and batch["fingerprints"].shape[0] == 16
    assert np.all(batch["lengths"] <= t)
    seen += batch["weights"].sum()
  assert seen == enc.target_lengths.sum()


def test_shape_of_a_step_is_its_batch_shape(encoded):
  _, enc = encoded
  bt = input_pipeline.Batches(enc, 16, 3, seed=0)
  for step in [0, 7, bt.steps_per_epoch + 2]:
    batch = bt(step)
    shape = batch["fingerprints"].shape[1], batch["targets"].shape[1]
    assert bt.shape(step) == shape


def test_process_shards_partition_the_global_batch(encoded):
  _, enc = encoded
  whole = input_pipeline.Batches(enc, 16, 2, seed=0)(4)
  parts = [input_pipeline.Batches(enc, 16, 2, 0, i, 2)(4) for i in range(2)]
  for k in whole:
    np.testing.assert_array_equal(
      whole[k], np.concatenate([p[k] for p in parts])
    )


def test_missing_file_error_says_where_to_put_data(tmp_path):
  import ml_collections

  cfg = ml_collections.ConfigDict(
    dict(
      source="files",
      data_dir=str(tmp_path),
      train_file="en/train.txt",
      skip_bad_rows=False,
    )
  )
  with pytest.raises(FileNotFoundError, match="data_dir"):
    input_pipeline.load_split(cfg, "train")


def test_many_unusable_training_rows_are_an_error_naming_the_cause(tmp_path):
  from configs import tiny
  from pqrnn_jax import train_data

  rows = ["wake me up\t[IN:CREATE_ALARM ]"] * 8
  rows.append("call mom\t[IN:CREATE_CALL [SL:CONTACT dad ] ]")  # No "dad".
  (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
  cfg = tiny.get_config()
  cfg.data.source, cfg.data.train_file = "files", str(tmp_path / "train.tsv")
  cfg.data.skip_unusable = False
  with pytest.raises(ValueError, match=r"1 of 9 rows .* alignment x1 .*call"):
    train_data.training_data(cfg, tmp_path)
  cfg.data.skip_unusable = True
  _, enc = train_data.training_data(cfg, tmp_path)
  assert len(enc.lengths) == 8 and enc.dropped["alignment"] == 1
