"""Tests for pqrnn_jax.metrics."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqrnn_jax import metrics
from pqrnn_jax.metrics import Node

_NESTED = "[IN:A w [SL:B x [IN:C [SL:D y z ] ] ] ]"


def _to_string(node: Node) -> str:
  """Serialises a tree the way MTOP writes it (test-only inverse)."""
  parts = ["[" + node.label]
  for child in node.children:
    parts.append(child if isinstance(child, str) else _to_string(child))
  return " ".join(parts + ["]"])


def test_parse_nested_tree():
  want = Node(
    "IN:A",
    (
      "w",
      Node("SL:B", ("x", Node("IN:C", (Node("SL:D", ("y", "z")),)))),
    ),
  )
  assert metrics.parse_tree(_NESTED) == want
  assert want.is_intent and not want.children[1].is_intent


@pytest.mark.parametrize(
  "s",
  [
    "[IN:A ]",
    "[IN:GET_WEATHER [SL:LOCATION new york ] ]",
    "[IN:A what is [SL:B x y ] now ]",  # full (TOP) form: words in intents
    _NESTED,
    "[IN:A [SL:B [IN:C ] [IN:D ] ] ]",  # two sub-intents in one slot
    "[IN:A [SL:B x ] [SL:B x ] ]",
    "\t[IN:A\n[SL:B   x ]  ]  ",  # any whitespace separates tokens
    "[IN:A [SL:B a]b ] ]",  # "a]b" is a word: only a bare "]" closes
    "[IN:A [SL:B ] ]",  # an empty slot is valid TOP ([SL:PERSON_REMINDED ])
  ],
)
def test_valid_trees(s):
  assert metrics.is_valid_tree(s)
  assert metrics.parse_tree(s) is not None


@pytest.mark.parametrize(
  "s",
  [
    "",
    "   ",
    "garbage",
    "hello world",
    "]",
    "[IN:A",  # unbalanced
    "[IN:A [SL:B x ]",
    "[IN:A ] ]",  # extra close
    "[IN:A ] extra",  # trailing tokens
    "[IN:A ] [IN:B ]",
    "x [IN:A ]",  # word before the root
    "[SL:B x ]",  # slot at the root
    "[IN:A [SL:B [SL:C x ] ] ]",  # slot directly in a slot
    "[IN:A [IN:B ] ]",  # intent directly in an intent
    "[IN: ]",  # empty labels
    "[IN:A [SL: x ] ]",
    "[IN ]",
    "[XX:A ]",
    "[ ]",
    "[IN:A [ x ] ]",
    "[IN:A]",  # glued close bracket
    "[IN:A [SL:B] x ] ]",
  ],
)
def test_invalid_trees(s):
  assert not metrics.is_valid_tree(s)
  assert metrics.parse_tree(s) is None


@pytest.mark.parametrize("s", [None, 5, b"[IN:A ]", ["[IN:A", "]"]])
def test_is_valid_tree_never_raises_on_non_strings(s):
  assert metrics.is_valid_tree(s) is False


def test_deep_nesting_does_not_recurse():
  depth = 5000
  s = "[IN:A [SL:B " * depth + "x " + "] ] " * depth
  assert metrics.is_valid_tree(s)
  scores = metrics.compute_all([s], [s])
  assert scores["exact_match"] == 1.0 and scores["slot_f1"] == 1.0


_TOKENS = ["[IN:A", "[IN:B", "[SL:X", "[SL:Y", "]", "w", "v"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=12))
def test_valid_trees_round_trip(tokens):
  s = " ".join(tokens)
  tree = metrics.parse_tree(s)
  if tree is not None:
    assert _to_string(tree) == metrics.normalize(s)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(s):
  assert isinstance(metrics.is_valid_tree(s), bool)
  scores = metrics.compute_all([s], ["[IN:A [SL:B x ] ]"])
  assert 0.0 <= scores["slot_f1"] <= 1.0


def test_normalize():
  assert metrics.normalize("  [IN:A \t\n [SL:B  x ]  ] ") == "[IN:A [SL:B x ] ]"


# Five hand-made examples; every expected number below is counted by hand.
_GOLDS = [
  "[IN:GET_WEATHER [SL:LOCATION new york ] [SL:DATE_TIME today ] ]",
  "[IN:CREATE_REMINDER [SL:TODO call [IN:GET_CONTACT [SL:CONTACT mom ] ] ]"
  " [SL:DATE_TIME at 5 pm ] ]",
  "[IN:CREATE_ALARM ]",
  "[IN:CREATE_REMINDER [SL:TODO call [IN:GET_CONTACT [SL:CONTACT mom ] ] ] ]",
  "[IN:GET_TIME ]",
]
_PREDS = [
  # 2 predicted slots, 1 right (LOCATION); intent right.
  "[IN:GET_WEATHER [SL:LOCATION new york ] [SL:DATE_TIME tomorrow ] ]",
  # Invalid (root never closes): no slots, intent wrong; gold has 3 slots:
  # (TODO, "call mom"), (CONTACT, "mom"), (DATE_TIME, "at 5 pm").
  "[IN:CREATE_REMINDER [SL:TODO call [IN:GET_CONTACT [SL:CONTACT mom ] ] ]"
  " [SL:DATE_TIME at 5 pm ]",
  # 1 predicted slot, gold has none; intent right.
  "[IN:CREATE_ALARM [SL:DATE_TIME 7 am ] ]",
  # Nested: (TODO, "call mom") right, (CONTACT_RELATED, "mom") wrong.
  "[IN:CREATE_REMINDER [SL:TODO call [IN:GET_CONTACT"
  " [SL:CONTACT_RELATED mom ] ] ] ]",
  # Exact match up to whitespace.
  "  [IN:GET_TIME\t ]\n",
]
# Gold slots 2 + 3 + 0 + 2 + 0 = 7; predicted 2 + 0 + 1 + 2 + 0 = 5; right 2.
_PRECISION, _RECALL = 2 / 5, 2 / 7
_F1 = 2 * 2 / (5 + 7)


def test_compute_all_hand_counted():
  got = metrics.compute_all(_PREDS, _GOLDS)
  assert got == pytest.approx(
    {
      "exact_match": 1 / 5,
      "intent_accuracy": 4 / 5,
      "slot_precision": _PRECISION,
      "slot_recall": _RECALL,
      "slot_f1": _F1,
      "invalid_tree_rate": 1 / 5,
      "count": 5,
    }
  )
  assert _F1 == pytest.approx(1 / 3)


def test_single_metrics_agree_with_compute_all():
  assert metrics.exact_match(_PREDS, _GOLDS) == pytest.approx(1 / 5)
  assert metrics.intent_accuracy(_PREDS, _GOLDS) == pytest.approx(4 / 5)
  assert metrics.invalid_tree_rate(_PREDS) == pytest.approx(1 / 5)
  assert metrics.slot_f1(_PREDS, _GOLDS) == pytest.approx(
    {"precision": _PRECISION, "recall": _RECALL, "f1": _F1}
  )


def test_slot_text_includes_nested_words_and_keeps_case():
  gold = ["[IN:A [SL:B Call [IN:C [SL:D Mom ] ] ] ]"]
  # Same structure, the nested slot text differs only in case.
  pred = ["[IN:A [SL:B Call [IN:C [SL:D mom ] ] ] ]"]
  # (B, "Call Mom") vs (B, "Call mom") and (D, "Mom") vs (D, "mom"): 0 right.
  assert metrics.slot_f1(pred, gold)["f1"] == 0.0
  assert metrics.slot_f1(gold, gold)["f1"] == 1.0


def test_slot_pairs_are_a_multiset():
  gold = ["[IN:A [SL:X a ] [SL:X a ] ]"]
  one = metrics.slot_f1(["[IN:A [SL:X a ] ]"], gold)
  assert one == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
  three = metrics.slot_f1(["[IN:A [SL:X a ] [SL:X a ] [SL:X a ] ]"], gold)
  assert three == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8})


def test_slot_f1_zero_denominators():
  none = metrics.slot_f1(["[IN:A ]"], ["[IN:B ]"])
  assert none == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
  spurious = metrics.slot_f1(["[IN:A [SL:X a ] ]"], ["[IN:A ]"])
  assert spurious == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
  missed = metrics.slot_f1(["garbage"], ["[IN:A [SL:X a ] ]"])
  assert missed == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_intent_accuracy_compares_top_level_only():
  gold = ["[IN:A [SL:B [IN:C ] ] ]"]
  assert metrics.intent_accuracy(["[IN:A ]"], gold) == 1.0
  assert metrics.intent_accuracy(["[IN:C ]"], gold) == 0.0
  assert metrics.intent_accuracy(["[IN:A"], gold) == 0.0  # invalid


def test_length_mismatch_and_empty_inputs_raise():
  with pytest.raises(ValueError, match="2 predictions but 1 golds"):
    metrics.compute_all(["[IN:A ]", "[IN:A ]"], ["[IN:A ]"])
  for fn in (
    metrics.exact_match,
    metrics.intent_accuracy,
    metrics.slot_f1,
    metrics.compute_all,
  ):
    with pytest.raises(ValueError, match="no predictions"):
      fn([], [])
  with pytest.raises(ValueError, match="no predictions"):
    metrics.invalid_tree_rate([])


def test_invalid_gold_raises():
  with pytest.raises(ValueError, match="gold 1"):
    metrics.compute_all(["[IN:A ]", "[IN:A ]"], ["[IN:A ]", "[IN:A"])


def test_gold_with_an_empty_slot_is_scored_not_refused():
  gold = "[IN:CREATE_REMINDER remind [SL:PERSON_REMINDED ] ]"
  scores = metrics.compute_all([gold, "[IN:CREATE_REMINDER ]"], [gold, gold])
  assert scores["exact_match"] == 0.5
  assert 0.0 < scores["slot_f1"] < 1.0
