"""Tests for the MTOP TFDS builder, on a tiny invented manual_dir."""

import json

import pytest

from pqrnn_jax.data import mtop_tfds
from pqrnn_jax.data.tokenizer import tokenize


def mtop_line(ex_id, utterance, parse, domain, locale):
  """An 8-column MTOP row; tokens and byte spans from our tokenizer."""
  tokens = tokenize(utterance)
  data, spans, pos = utterance.encode(), [], 0
  for t in tokens:
    start = data.index(t.encode(), pos)
    pos = start + len(t.encode())
    spans.append({"start": start, "length": len(t.encode())})
  blob = json.dumps({"tokens": tokens, "tokenSpans": spans})
  intent = parse.split()[0][1:]
  return "\t".join([ex_id, intent, "", utterance, domain, locale, parse, blob])


def write_lang(root, lang, split, rows):
  locale = f"{lang}_XX"
  lines = [mtop_line(*row, locale) for row in rows]
  (root / lang).mkdir(parents=True, exist_ok=True)
  # Like the release: no final newline.
  (root / lang / f"{split}.txt").write_text("\n".join(lines), "utf-8")


EN_EVAL = [
  (
    "11",
    "set an alarm for 6 am",
    "[IN:CREATE_ALARM [SL:DATE_TIME for 6 am ] ]",
    "alarm",
  ),
  ("12", "What's the weather?", "[IN:GET_WEATHER ]", "weather"),
]
EN_TEST = [
  (
    "13",
    "stop the timer",
    "[IN:PAUSE_TIMER [SL:METHOD_TIMER timer ] ]",
    "timer",
  )
]
FR_ROWS = [
  (
    "21",
    "Mets l'alarme à 7 h",
    "[IN:CREATE_ALARM [SL:DATE_TIME à 7 h ] ]",
    "alarm",
  )
]


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("manual")
  write_lang(root, "en", "eval", EN_EVAL)
  write_lang(root, "en", "test", EN_TEST)
  (root / "derived").mkdir()
  (root / mtop_tfds.EN_TRAIN_PAIRS).write_text(
    "call mom\t[IN:CREATE_CALL [SL:CONTACT mom ] ]\n"
    "play jazz\t[IN:PLAY_MUSIC [SL:MUSIC_GENRE jazz ] ]\n",
    "utf-8",
  )
  write_lang(root, "fr", "eval", FR_ROWS)
  write_lang(root, "fr", "test", FR_ROWS)
  write_lang(root, "de", "eval", FR_ROWS)  # de has no test file.
  return root


def test_english_from_manual_dir(manual_dir, tmp_path):
  data_dir = tmp_path / "tfds"
  eval_examples = mtop_tfds.load("en", "eval", manual_dir, data_dir)
  builder = mtop_tfds.Mtop(config="en", data_dir=data_dir)
  assert set(builder.info.splits) == {"train", "eval", "test"}
  assert [e.id for e in eval_examples] == ["11", "12"]
  first = eval_examples[0]
  assert first.tokens == ("set", "an", "alarm", "for", "6", "am")
  assert (first.locale, first.domain) == ("en_XX", "alarm")
  assert first.parse == EN_EVAL[0][2]
  assert eval_examples[1].tokens == ("What", "'s", "the", "weather", "?")
  # The 2-column train file stands in for the missing en/train.txt.
  train = mtop_tfds.load("en", "train", manual_dir, data_dir)
  assert [e.utterance for e in train] == ["call mom", "play jazz"]
  assert train[0].id.endswith(".tsv:1") and train[0].locale == "en_XX"
  assert [e.id for e in mtop_tfds.load("en", "test", manual_dir, data_dir)] == [
    "13"
  ]


def test_language_without_train(manual_dir, tmp_path):
  data_dir = tmp_path / "tfds"
  (ex,) = mtop_tfds.load("fr", "test", manual_dir, data_dir)
  assert ex.tokens == ("Mets", "l'", "alarme", "à", "7", "h")
  assert ex.utterance == "Mets l'alarme à 7 h"
  builder = mtop_tfds.Mtop(config="fr", data_dir=data_dir)
  assert set(builder.info.splits) == {"eval", "test"}


def test_missing_test_split_is_an_error(manual_dir, tmp_path):
  with pytest.raises(ValueError, match="test"):
    mtop_tfds.load("de", "eval", manual_dir, tmp_path / "tfds")


def test_configs():
  names = [c.name for c in mtop_tfds.Mtop.BUILDER_CONFIGS]
  assert names == ["en", "de", "es", "fr", "hi", "th"]
  assert mtop_tfds.Mtop.name == "mtop"


def test_training_reads_the_builder(manual_dir, tmp_path):
  """data.source = "tfds": the input pipeline reads the prepared splits,
  the same examples as the files reader gives."""
  from configs import mtop
  from pqrnn_jax import input_pipeline

  cfg = mtop.get_config("en").data
  cfg.data_dir = str(manual_dir)
  files = input_pipeline.load_split(cfg, "eval")
  cfg.source, cfg.tfds_dir = "tfds", str(tmp_path / "tfds")
  built = input_pipeline.load_split(cfg, "eval")
  assert [(e.id, e.tokens, e.parse) for e in built] == [
    (e.id, e.tokens, e.parse) for e in files
  ]
  assert len(input_pipeline.load_split(cfg, "train")) == 2
