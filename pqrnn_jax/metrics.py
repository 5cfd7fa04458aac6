"""MTOP metrics over bracketed TOP trees: exact match, intent, slot F1.

A tree is "[IN:X ... ]" at the root; an intent holds words and "[SL:Y ... ]"
slots; a slot holds words and nested "[IN:..." trees and is never empty;
tokens are separated by whitespace and nothing may follow the root's "]".
Words are any other tokens that neither start with "[" nor are "]".
"""

import collections
import dataclasses
from collections.abc import Sequence

_INTENT, _SLOT = "IN", "SL"


@dataclasses.dataclass(frozen=True)
class Node:
  """An intent or slot: label like "IN:GET_WEATHER"; children nodes or words."""

  label: str
  children: tuple["Node | str", ...] = ()

  @property
  def is_intent(self) -> bool:
    return self.label.startswith(_INTENT + ":")


def normalize(s: str) -> str:
  """Collapses every run of whitespace to one space and strips the ends."""
  return " ".join(s.split())


def _parse(s) -> tuple[Node, list[tuple[str, str]]] | None:
  """(root, [(slot label, slot text)] for every slot) or None if invalid."""
  if not isinstance(s, str):
    return None
  # Each open node is (label, children, words); an explicit stack instead of
  # recursion so that no input, however deep, can raise RecursionError.
  stack: list[tuple[str, list, list[str]]] = []
  root, slots = None, []
  for token in s.split():
    if root is not None:
      return None  # tokens after the root closed
    if token == "]":
      if not stack:
        return None
      label, children, words = stack.pop()
      node = Node(label, tuple(children))
      if not node.is_intent and not children:
        return None  # an empty slot has no text to score
      if not stack:
        root = node
        continue
      if not node.is_intent:
        slots.append((label, " ".join(words)))
      stack[-1][1].append(node)
      stack[-1][2].extend(words)
    elif token.startswith("["):
      kind, colon, name = token[1:].partition(":")
      if kind not in (_INTENT, _SLOT) or not colon or not name:
        return None
      if "[" in name or "]" in name:
        return None  # glued tokens such as "[IN:X]"
      parent_kind = stack[-1][0][:2] if stack else None
      # Intents open at the root or directly inside a slot; slots only
      # directly inside an intent.
      if kind == _INTENT and parent_kind not in (None, _SLOT):
        return None
      if kind == _SLOT and parent_kind != _INTENT:
        return None
      stack.append((token[1:], [], []))
    elif stack:
      stack[-1][1].append(token)
      stack[-1][2].append(token)
    else:
      return None  # a word outside the root
  if root is None:
    return None  # empty, or unbalanced
  return root, slots


def parse_tree(s: str) -> Node | None:
  """The tree of a TOP bracket string, or None if it is not a valid tree."""
  parsed = _parse(s)
  return None if parsed is None else parsed[0]


def is_valid_tree(s: str) -> bool:
  """Whether s is a valid tree; never raises, whatever s is."""
  return _parse(s) is not None


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
