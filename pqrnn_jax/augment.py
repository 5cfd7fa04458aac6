"""Slot-value substitution: more training pairs from the ones we have.

A leaf slot (a slot with words only, no intent inside) gets the words of
another value that the same slot label takes elsewhere in the training data,
in the utterance and in the parse together:

  [IN:CREATE_ALARM [SL:DATE_TIME at 7 am ] ]      "wake me at 7 am"
  [IN:CREATE_ALARM [SL:DATE_TIME tomorrow ] ]     "wake me tomorrow"

The model then sees each carrier phrase with many values, and each value in
many carrier phrases, so it has to read a slot from its context as well as
from its words: the case of the 20 % of MTOP en test utterances that hold a
word never seen in training (docs/RESULTS.md).
"""

import collections
import logging
import random

from pqrnn_jax import targets as targets_lib
from pqrnn_jax.data.example import Example


def leaf_slots(items):
  """(label, first word index, end index) of each leaf slot in parse items
  (`parse.split()`): "[SL:X", words, "]" with no bracket among the words."""
  out = []
  for i, it in enumerate(items):
    if not it.startswith("[SL:"):
      continue
    j = i + 1
    while j < len(items) and not items[j].startswith("[") and items[j] != "]":
      j += 1
    if j < len(items) and items[j] == "]" and j > i + 1:
      out.append((it[1:], i + 1, j))
  return out


def slot_values(examples) -> dict[str, list[tuple[str, ...]]]:
  """Distinct word tuples of each leaf slot label, in first-seen order."""
  values = collections.defaultdict(dict)
  for e in examples:
    items = e.parse.split()
    for label, a, b in leaf_slots(items):
      values[label][tuple(items[a:b])] = None
  return {k: list(v) for k, v in values.items()}


def _span(words, tokens):
  """Start of the only place `words` occur contiguously in `tokens`, or
  None if they occur nowhere or more than once (ambiguous)."""
  first = targets_lib.find_run(words, tokens, 0)
  if first < 0 or targets_lib.find_run(words, tokens, first + 1) >= 0:
    return None
  return first


def substitute(example: Example, values, rng: random.Random):
  """A copy of `example` with each substitutable leaf slot given, with
  probability 1/2 (at least one), another value of its label; None when
  no slot can be substituted."""
  items = example.parse.split()
  slots = []  # (label, item range, token start)
  for label, a, b in leaf_slots(items):
    start = _span(items[a:b], example.tokens)
    if start is not None and len(values.get(label, ())) > 1:
      slots.append((label, a, b, start))
  if not slots:
    return None
  chosen = [s for s in slots if rng.random() < 0.5] or [rng.choice(slots)]
  tokens = list(example.tokens)
  # Right to left, so earlier item and token indices stay valid.
  for label, a, b, start in sorted(chosen, key=lambda s: -s[1]):
    old = tuple(items[a:b])
    new = old
    while new == old:
      new = rng.choice(values[label])
    items[a:b] = new
    tokens[start : start + len(old)] = new
  return Example(
    f"aug:{example.id}",
    example.locale,
    example.domain,
    " ".join(tokens),
    tuple(tokens),
    " ".join(items),
  )


def augment(examples, ratio: float, seed: int) -> list[Example]:
  """About round(ratio * len(examples)) substituted copies (fewer when
  some examples have no substitutable slot); slot values come from
  `examples` only."""
  values = slot_values(examples)
  rng = random.Random(seed)
  want = round(ratio * len(examples))
  out, tries = [], 0
  order = list(examples)
  while len(out) < want and tries < 2 * want:
    if tries % len(order) == 0:
      rng.shuffle(order)
    new = substitute(order[tries % len(order)], values, rng)
    tries += 1
    if new is not None:
      out.append(new)
  logging.info(
    "slot-value substitution: %d new examples from %d (%d label values)",
    len(out),
    len(examples),
    sum(len(v) for v in values.values()),
  )
  return out
