"""Data mixtures: file specs, ID slices, weights; per-locale metrics; a
tiny two-locale training run."""

import json

import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import evaluate, input_pipeline, training
from pqrnn_jax.data import mixture, synthetic
from pqrnn_jax.data.example import Example


def test_spec_grammar():
  assert mixture.parse_spec("de/eval.txt") == mixture.Source("de/eval.txt")
  assert mixture.parse_spec("de/eval.txt[:90%]") == mixture.Source(
    "de/eval.txt", "", 0, 90
  )
  assert mixture.parse_spec("en_XX=derived/t.tsv[90%:]") == mixture.Source(
    "derived/t.tsv", "en_XX", 90, 100
  )
  for bad in ("", "x[90%:10%]", "x[:101%]"):
    with pytest.raises(ValueError, match="spec"):
      mixture.parse_spec(bad)


def _ex(i, locale=""):
  return Example(str(i), locale, "", "x", ("x",), "[IN:A x ]")


def test_id_slices_partition_rows_and_keep_translations_together():
  exs = [_ex(i) for i in range(2000)]
  head = mixture.select(exs, mixture.parse_spec("f[:90%]"))
  tail = mixture.select(exs, mixture.parse_spec("f[90%:]"))
  assert len(head) + len(tail) == 2000 and not {e.id for e in head} & {
    e.id for e in tail
  }
  assert 0.87 < len(head) / 2000 < 0.93
  # The same IDs in another language (and another row order) split alike.
  other = mixture.select(exs[::-1], mixture.parse_spec("de_XX=g[:90%]"))
  assert {e.id for e in other} == {e.id for e in head}
  assert {e.locale for e in other} == {"de_XX"}


def test_mix_by_weights_and_by_temperature():
  a, b = [_ex(i, "a") for i in range(300)], [_ex(i, "b") for i in range(100)]
  np.testing.assert_allclose(mixture.shares([300, 100]), [0.75, 0.25])
  np.testing.assert_allclose(
    mixture.shares([300, 100], temperature=1e9), [0.5, 0.5], atol=1e-6
  )
  mixed = mixture.mix([a, b], weights=(1, 1), seed=0)
  assert len(mixed) == 400
  assert sum(e.locale == "b" for e in mixed) == 200  # b repeated twice.
  assert mixed == mixture.mix([a, b], weights=(1, 1), seed=0)
  with pytest.raises(ValueError, match="2 train_files"):
    mixture.mix([a, b], weights=(1,))


def test_score_reports_each_locale_and_their_unweighted_average():
  exs = [_ex(i, "en_XX") for i in range(3)] + [_ex(9, "de_XX")]
  preds = ["[IN:A x ]"] * 3 + ["[IN:B x ]"]
  r = evaluate.score(preds, exs)
  assert r["per_locale"]["en_XX"]["exact_match"] == 1.0
  assert r["per_locale"]["de_XX"]["exact_match"] == 0.0
  assert r["metrics"]["exact_match"] == 0.75
  assert r["locale_average"]["exact_match"] == 0.5
  flat = evaluate.flat_locale_metrics(r)
  assert flat["locale_average_exact_match"] == 0.5
  assert "average of 2" in evaluate.report("test", r)
  one = evaluate.score(preds[:3], exs[:3])
  assert "locale_average" not in one and not evaluate.flat_locale_metrics(one)


def _write(path, examples):
  path.write_text("".join(f"{e.utterance}\t{e.parse}\n" for e in examples))


def test_two_locale_mixture_trains_and_ranks_by_locale_average(tmp_path):
  splits = synthetic.splits(64, 16, 16, seed=1)
  for loc in ("aa", "bb"):
    for split in ("train", "eval"):
      _write(tmp_path / f"{loc}_{split}.tsv", splits[split])
  cfg = tiny.get_config()
  d = cfg.data
  d.source, d.data_dir = "files", str(tmp_path)
  d.train_files = ("aa_XX=aa_train.tsv", "bb_XX=bb_train.tsv[:50%]")
  d.train_weights = (1.0, 1.0)
  d.eval_files = ("aa_XX=aa_eval.tsv", "bb_XX=bb_eval.tsv")
  train = input_pipeline.load_split(d, "train")
  locales = [e.locale for e in train]
  assert locales.count("aa_XX") == locales.count("bb_XX")  # Equal weights.
  workdir = tmp_path / "run"
  training.train_and_evaluate(cfg, workdir)
  best = json.loads((workdir / "best" / "best.json").read_text())
  assert {"exact_match_aa_XX", "exact_match_bb_XX"} <= set(best)
  avg = (best["exact_match_aa_XX"] + best["exact_match_bb_XX"]) / 2
  assert best["locale_average_exact_match"] == pytest.approx(avg)
