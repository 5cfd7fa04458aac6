"""Tests for the synthetic TOP-style data generator."""

import re

from pqrnn_jax.data import readers, synthetic
from pqrnn_jax.data.tokenizer import tokenize

_LABEL = re.compile(r"^\[(IN|SL):[A-Z_]+$")


def test_deterministic_by_seed():
  assert synthetic.generate(50, seed=3) == synthetic.generate(50, seed=3)
  # Example i does not depend on how many are generated.
  assert synthetic.generate(30, seed=3)[:10] == synthetic.generate(10, seed=3)


def test_different_seeds_differ():
  a = [e.utterance for e in synthetic.generate(50, seed=0)]
  b = [e.utterance for e in synthetic.generate(50, seed=1)]
  assert a != b


def test_fields():
  examples = synthetic.generate(200, seed=5, locale="xx_XX")
  assert [e.id for e in examples] == [f"syn-5-{i}" for i in range(200)]
  assert {e.locale for e in examples} == {"xx_XX"}
  assert {e.domain for e in examples} <= set(synthetic.DOMAINS)
  for e in examples:
    assert e.tokens == tuple(tokenize(e.utterance))


def test_parses_are_well_formed_decoupled_trees():
  for e in synthetic.generate(500, seed=7):
    assert readers.check_parse(e.parse) is None, e.parse
    assert e.parse == " ".join(e.parse.split())
    assert e.parse.startswith(f"[IN:{e.parse.split()[0][4:]} ")
    tokens = set(e.tokens)
    for piece in e.parse.split():
      if piece.startswith("["):
        assert _LABEL.match(piece), piece
      elif piece != "]":
        # Decoupled form: every leaf is copied from the utterance.
        assert piece in tokens, (piece, e.utterance)


def test_coverage_and_nesting():
  examples = synthetic.generate(1000, seed=0)
  parses = " ".join(e.parse for e in examples)
  intents = {e.parse.split()[0] for e in examples}
  slots = set(re.findall(r"\[SL:\w+", parses))
  assert len({e.domain for e in examples}) >= 5
  assert 15 <= len(intents) <= 25
  assert len(slots) >= 20
  nested = [e for e in examples if e.parse.count("[IN:") > 1]
  assert 0.05 < len(nested) / len(examples) < 0.5
  assert any("[SL:TODO [IN:CREATE_CALL" in e.parse for e in nested)
  assert any("[IN:GET_CONTACT" in e.parse for e in nested)
  # Not trivial: many distinct utterances, varying lengths.
  assert len({e.utterance for e in examples}) > 700
  assert len({len(e.tokens) for e in examples}) > 10


def test_splits():
  data = synthetic.splits(40, 20, 10, seed=2)
  assert {k: len(v) for k, v in data.items()} == {
    "train": 40,
    "eval": 20,
    "test": 10,
  }
  ids = [e.id for split in data.values() for e in split]
  assert len(set(ids)) == len(ids)
  seeds = {k: {e.id.split("-")[1] for e in v} for k, v in data.items()}
  assert seeds == {"train": {"6"}, "eval": {"7"}, "test": {"8"}}
  other = synthetic.splits(40, 20, 10, seed=3)
  assert not set(ids) & {e.id for split in other.values() for e in split}
