"""MTOP metrics over bracketed TOP trees: exact match, intent, slot F1.

What a valid tree is: targets.read_tree. An invalid prediction scores as
wrong; an invalid gold is an error.
"""

import collections
from collections.abc import Sequence

from pqrnn_jax import targets

# The one tree grammar lives in targets.py.
Node = targets.Node
normalize = targets.normalize
parse_tree = targets.parse_tree
is_valid_tree = targets.is_valid_tree

# With several locales: the unweighted mean of their exact match, logged
# by evaluation and what best/ ranks by (checkpoints.py).
LOCALE_AVERAGE_EXACT_MATCH = "locale_average_exact_match"


def _parse(s) -> tuple[Node, list[tuple[str, str]]] | None:
  """(root, [(slot label, slot text)]) or None if s is not a valid tree."""
  try:
    return targets.read_tree(s)
  except targets.OntologyError:
    return None


def _check_lengths(preds: Sequence[str], golds: Sequence[str]) -> None:
  if len(preds) != len(golds):
    raise ValueError(f"{len(preds)} predictions but {len(golds)} golds")
  if not preds:
    raise ValueError("no predictions to score: metrics of 0 examples")


def _parse_golds(golds: Sequence[str]) -> list[tuple[Node, list]]:
  parsed = [_parse(g) for g in golds]
  for i, p in enumerate(parsed):
    if p is None:
      # A bad reference would silently cap every metric: fail loudly.
      raise ValueError(f"gold {i} is not a valid tree: {golds[i]!r}")
  return parsed


def exact_match(preds: Sequence[str], golds: Sequence[str]) -> float:
  """Share of predictions equal to their gold after whitespace normalising."""
  _check_lengths(preds, golds)
  hits = sum(
    normalize(p) == normalize(g) for p, g in zip(preds, golds, strict=True)
  )
  return hits / len(preds)


def _intent_hits(pred_parsed, gold_parsed) -> int:
  return sum(
    p is not None and p[0].label == g[0].label
    for p, g in zip(pred_parsed, gold_parsed, strict=True)
  )


def intent_accuracy(preds: Sequence[str], golds: Sequence[str]) -> float:
  """Share with the right top-level intent; an invalid prediction is wrong."""
  _check_lengths(preds, golds)
  hits = _intent_hits([_parse(p) for p in preds], _parse_golds(golds))
  return hits / len(preds)


def _slot_scores(pred_parsed, gold_parsed) -> dict[str, float]:
  tp = n_pred = n_gold = 0
  for p, g in zip(pred_parsed, gold_parsed, strict=True):
    pred_slots = collections.Counter(p[1] if p is not None else ())
    gold_slots = collections.Counter(g[1])
    tp += sum((pred_slots & gold_slots).values())
    n_pred += sum(pred_slots.values())
    n_gold += sum(gold_slots.values())
  if n_pred == 0 and n_gold == 0:
    # Nothing to find and nothing wrongly found.
    return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
  precision = tp / n_pred if n_pred else 0.0
  recall = tp / n_gold if n_gold else 0.0
  denom = precision + recall
  f1 = 2 * precision * recall / denom if denom else 0.0
  return {"precision": precision, "recall": recall, "f1": f1}


def slot_f1(preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
  """Micro precision/recall/F1 over (slot label, slot text), nested included.

  An invalid prediction predicts no slots. A zero denominator gives 0, except
  that no predicted and no gold slots at all gives 1 for all three.
  """
  _check_lengths(preds, golds)
  return _slot_scores([_parse(p) for p in preds], _parse_golds(golds))


def invalid_tree_rate(preds: Sequence[str]) -> float:
  """Share of predictions that do not parse as a tree."""
  if not preds:
    raise ValueError("no predictions to score: metrics of 0 examples")
  return sum(not is_valid_tree(p) for p in preds) / len(preds)


def compute_all(preds: Sequence[str], golds: Sequence[str]) -> dict:
  """Every metric at once (rates as fractions in [0, 1]) plus the count."""
  _check_lengths(preds, golds)
  pred_parsed = [_parse(p) for p in preds]
  gold_parsed = _parse_golds(golds)
  slots = _slot_scores(pred_parsed, gold_parsed)
  n = len(preds)
  return {
    "exact_match": exact_match(preds, golds),
    "intent_accuracy": _intent_hits(pred_parsed, gold_parsed) / n,
    "slot_precision": slots["precision"],
    "slot_recall": slots["recall"],
    "slot_f1": slots["f1"],
    "invalid_tree_rate": sum(p is None for p in pred_parsed) / n,
    "count": n,
  }
