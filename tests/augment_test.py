"""Slot-value substitution keeps utterance and parse in step."""

import random

from pqrnn_jax import augment
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.data.example import Example


def _ex(i, text, parse):
  return Example(str(i), "en_XX", "", text, tuple(text.split()), parse)


TRAIN = [
  _ex(0, "wake me at 7 am", "[IN:CREATE_ALARM [SL:DATE_TIME at 7 am ] ]"),
  _ex(1, "alarm for tomorrow", "[IN:CREATE_ALARM [SL:DATE_TIME tomorrow ] ]"),
  _ex(
    2,
    "call ana on friday",
    "[IN:CREATE_CALL [SL:CONTACT ana ] [SL:DATE_TIME on friday ] ]",
  ),
  _ex(3, "call bo", "[IN:CREATE_CALL [SL:CONTACT bo ] ]"),
  # A nested slot: only its inner leaf slot may change.
  _ex(
    4,
    "weather where ana lives",
    "[IN:GET_WEATHER [SL:LOCATION [IN:GET_LOCATION [SL:CONTACT ana ] ] ] ]",
  ),
  _ex(5, "stop", "[IN:STOP_MUSIC ]"),
]


def test_leaf_slots_skip_slots_with_an_intent_inside():
  items = TRAIN[4].parse.split()
  assert [(lab, items[a:b]) for lab, a, b in augment.leaf_slots(items)] == [
    ("SL:CONTACT", ["ana"])
  ]


def test_slot_values_per_label():
  v = augment.slot_values(TRAIN)
  assert v["SL:DATE_TIME"] == [
    ("at", "7", "am"),
    ("tomorrow",),
    ("on", "friday"),
  ]
  assert v["SL:CONTACT"] == [("ana",), ("bo",)]
  assert "SL:LOCATION" not in v


def test_substitution_changes_both_sides_and_still_aligns():
  values = augment.slot_values(TRAIN)
  ontology = targets_lib.Ontology.build(e.parse for e in TRAIN)
  rng = random.Random(0)
  seen = set()
  for _ in range(50):
    for e in TRAIN:
      new = augment.substitute(e, values, rng)
      if e.parse == "[IN:STOP_MUSIC ]":
        assert new is None  # No slot to substitute.
        continue
      assert new.parse != e.parse and new.tokens != e.tokens
      assert new.parse.split()[0] == e.parse.split()[0]  # Same intent.
      # Every slot word is a source token, so the parse round-trips.
      actions = targets_lib.parse_to_actions(new.parse, new.tokens, ontology)
      assert targets_lib.actions_to_parse(
        actions, new.tokens, ontology
      ) == targets_lib.normalize(new.parse)
      seen.add(new.utterance)
  assert "wake me tomorrow" in seen and "call bo on friday" in seen
  assert "weather where bo lives" in seen


def test_ambiguous_span_is_not_substituted():
  e = _ex(9, "ana or ana", "[IN:CREATE_CALL [SL:CONTACT ana ] ]")
  values = augment.slot_values(TRAIN)
  assert augment.substitute(e, values, random.Random(0)) is None


def test_augment_count_and_determinism():
  a = augment.augment(TRAIN, 2.0, seed=3)
  assert len(a) == 12 and all(e.id.startswith("aug:") for e in a)
  assert a == augment.augment(TRAIN, 2.0, seed=3)
  assert augment.augment(TRAIN, 0.0, seed=3) == []


def test_training_data_gains_the_substituted_copies(tmp_path):
  from configs import tiny
  from pqrnn_jax import train_data

  cfg = tiny.get_config()
  _, base = train_data.training_data(cfg, tmp_path)
  cfg.data.augment_ratio = 1.0
  _, more = train_data.training_data(cfg, tmp_path)
  assert len(base.lengths) < len(more.lengths) <= 2 * len(base.lengths) + 2
