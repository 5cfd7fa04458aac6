"""Parse strings <-> action sequences over an ontology plus source pointers.

A parse such as "[IN:GET_WEATHER [SL:LOCATION New York ] ]" is read in
pre-order as actions: ontology symbols ("[IN:X", "[SL:Y", "]", EOS) and
pointers to source token positions. With an ontology of V symbols, action id
a < V is symbol a and a >= V points at source position a - V, so the decoder
scores one distribution of V + T entries. Words are never generated, only
copied: the output vocabulary is the ontology (about 200 symbols for MTOP).

Forms: "decoupled" (MTOP: words only inside slots) and "full" (TOP: every
source word in the tree). The action encoding is the same; the form only
changes where the decoder may point (see decode.py).
"""

import collections
import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, EOS, CLOSE = "<pad>", "<eos>", "]"
PAD_ID, EOS_ID, CLOSE_ID = 0, 1, 2
RESERVED = (PAD, EOS, CLOSE)
FORMS = ("decoupled", "full")


class AlignmentError(ValueError):
  """A word of the parse is not one of the source tokens."""


class OntologyError(ValueError):
  """A parse label is not in the ontology, or the parse is not a tree."""


def _is_open(item: str) -> bool:
  return item.startswith("[IN:") or item.startswith("[SL:")


@dataclasses.dataclass(frozen=True)
class Ontology:
  """The output symbols: reserved ones, then "[IN:*" and "[SL:*" labels.

  Attributes:
    symbols: id -> symbol; ids 0..2 are PAD, EOS and "]".
  """

  symbols: tuple[str, ...]

  def __post_init__(self):
    if self.symbols[: len(RESERVED)] != RESERVED:
      raise OntologyError(f"ontology must start with {RESERVED}")
    bad = [s for s in self.symbols[len(RESERVED) :] if not _is_open(s)]
    if bad:
      raise OntologyError(f"not intent or slot labels: {bad[:5]}")
    if len(set(self.symbols)) != len(self.symbols):
      raise OntologyError("duplicate symbols in ontology")
    index = {s: i for i, s in enumerate(self.symbols)}
    object.__setattr__(self, "_index", index)

  @classmethod
  def build(cls, parses: Iterable[str]) -> "Ontology":
    """Collects every label of the given parses (sorted, intents first)."""
    labels = {it for p in parses for it in p.split() if _is_open(it)}
    intents = sorted(s for s in labels if s.startswith("[IN:"))
    slots = sorted(s for s in labels if s.startswith("[SL:"))
    return cls(RESERVED + tuple(intents) + tuple(slots))

  def __len__(self) -> int:
    return len(self.symbols)

  def __contains__(self, symbol: str) -> bool:
    return symbol in self._index

  def id(self, symbol: str) -> int:
    try:
      return self._index[symbol]
    except KeyError:
      raise OntologyError(f"unknown symbol {symbol!r}") from None

  @property
  def num_intents(self) -> int:
    return sum(s.startswith("[IN:") for s in self.symbols)

  @property
  def num_slots(self) -> int:
    return sum(s.startswith("[SL:") for s in self.symbols)

  def kinds(self) -> list[str]:
    """Per id: "pad", "eos", "close", "intent" or "slot" (for masks)."""
    fixed = {PAD: "pad", EOS: "eos", CLOSE: "close"}
    return [
      fixed.get(s, "intent" if s.startswith("[IN:") else "slot")
      for s in self.symbols
    ]

  def to_dict(self) -> dict:
    return {"version": 1, "symbols": list(self.symbols)}

  @classmethod
  def from_dict(cls, d: dict) -> "Ontology":
    return cls(tuple(d["symbols"]))

  def save(self, path) -> None:
    Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

  @classmethod
  def load(cls, path) -> "Ontology":
    return cls.from_dict(json.loads(Path(path).read_text()))


# -- The tree grammar (readers, targets, metrics all use this one) ---------

_INTENT, _SLOT = "IN", "SL"


@dataclasses.dataclass(frozen=True)
class Node:
  """An intent or slot: label like "IN:GET_WEATHER"; children nodes or words."""

  label: str
  children: tuple["Node | str", ...] = ()

  @property
  def is_intent(self) -> bool:
    return self.label.startswith(_INTENT + ":")


def _open(token: str, stack) -> str | None:
  """Pushes an opening token; returns what is wrong with it, or None."""
  kind, colon, name = token[1:].partition(":")
  if kind not in (_INTENT, _SLOT) or not colon or not name:
    return f"{token!r} is not '[IN:NAME' or '[SL:NAME'"
  if "[" in name or "]" in name:
    return f"{token!r}: brackets glued to a label"
  parent = stack[-1][0][:2] if stack else None
  # Intents open at the root or directly inside a slot; slots only
  # directly inside an intent.
  if kind == _INTENT and parent not in (None, _SLOT):
    return f"{token!r} directly inside an intent"
  if kind == _SLOT and parent != _INTENT:
    return f"{token!r} outside an intent"
  stack.append((token[1:], [], []))
  return None


def read_tree(s: str) -> tuple[Node, list[tuple[str, str]]]:
  """(root, [(slot label, slot text)] for every slot) of a TOP bracket
  string; raises OntologyError saying what is wrong.

  A tree is "[IN:X ... ]" at the root; an intent holds words and
  "[SL:Y ... ]" slots; a slot holds words and nested "[IN:..." trees, and
  may be empty (TOP has "[SL:PERSON_REMINDED ]"); tokens are separated by
  whitespace and nothing may follow the root's "]". Words are any other
  tokens that neither start with "[" nor are "]".
  """
  if not isinstance(s, str):
    raise OntologyError(f"not a string: {type(s).__name__}")
  # Each open node is (label, children, words); an explicit stack instead of
  # recursion so that no input, however deep, can raise RecursionError.
  stack, root, slots = [], None, []
  for token in s.split():
    problem = None
    if root is None and not stack and not token.startswith("[IN:"):
      problem = f"does not start with '[IN:' but {token!r}"
    elif root is not None:
      problem = f"{token!r} after the root closed"
    elif token == "]":
      if not stack:
        problem = "unbalanced brackets, ']' closes nothing"
      else:
        label, children, words = stack.pop()
        node = Node(label, tuple(children))
        if not stack:
          root = node
          continue
        if not node.is_intent:
          slots.append((label, " ".join(words)))
        stack[-1][1].append(node)
        stack[-1][2].extend(words)
    elif token.startswith("["):
      problem = _open(token, stack)
    elif stack:
      stack[-1][1].append(token)
      stack[-1][2].append(token)
    else:
      problem = f"word {token!r} outside the root"
    if problem:
      raise OntologyError(f"not a tree ({problem}): {s[:60]!r}")
  if root is None:
    why = f"unbalanced brackets, {len(stack)} unclosed" if stack else "empty"
    raise OntologyError(f"not a tree ({why}): {s[:60]!r}")
  return root, slots


def tree_problem(s) -> str | None:
  """What is wrong with a TOP bracket string, or None for a valid tree."""
  try:
    read_tree(s)
  except OntologyError as e:
    return str(e)
  return None


def parse_tree(s) -> Node | None:
  """The tree of a TOP bracket string, or None if it is not a valid tree."""
  return None if tree_problem(s) else read_tree(s)[0]


def is_valid_tree(s) -> bool:
  """Whether s is a valid tree; never raises, whatever s is."""
  return tree_problem(s) is None


def find_run(run, tokens, start):
  """First position p >= start where tokens[p:p+len(run)] == run, or -1."""
  n = len(run)
  for p in range(start, len(tokens) - n + 1):
    if list(tokens[p : p + n]) == run:
      return p
  return -1


def _align_run(run: list[str], tokens: Sequence[str], last: int) -> list[int]:
  """Positions for a run of consecutive words, preferring a contiguous span
  after the previous pointer (slots follow utterance order in MTOP). Exact
  matches first; failing those, case-insensitive ones: in de/es/fr MTOP
  1.5-3.3 % of slot texts are cased unlike the utterance ("Whatsapp" for
  "whatsapp"), and a pointer copies the utterance's token as written."""
  try:
    return _align_words(run, tokens, last)
  except AlignmentError:
    fold = lambda words: [w.casefold() for w in words]
    return _align_words(fold(run), fold(tokens), last)


def _align_words(run, tokens, last: int) -> list[int]:
  for start in (last + 1, 0):
    p = find_run(run, tokens, start)
    if p >= 0:
      return list(range(p, p + len(run)))
  out = []
  for w in run:  # Not contiguous in the source: align word by word.
    cands = [p for p, t in enumerate(tokens) if t == w]
    if not cands:
      raise AlignmentError(f"word {w!r} is not a source token")
    after = [p for p in cands if p > last]
    last = after[0] if after else cands[0]
    out.append(last)
  return out


def parse_to_actions(
  parse: str, tokens: Sequence[str], ontology: Ontology
) -> list[int]:
  """Encodes a parse as action ids, ending with EOS.

  Raises:
    OntologyError: the parse is not a tree or has an unknown label.
    AlignmentError: a word of the parse is not one of `tokens`.
  """
  read_tree(parse)
  items = parse.split()
  v = len(ontology)
  actions, run, last = [], [], -1

  def flush():
    nonlocal last
    if run:
      pos = _align_run(run, tokens, last)
      actions.extend(v + p for p in pos)
      last = pos[-1]
      run.clear()

  for it in items:
    if _is_open(it) or it == CLOSE:
      flush()
      actions.append(ontology.id(it))
    else:
      run.append(it)
  flush()
  actions.append(EOS_ID)
  return actions


def actions_to_parse(
  actions: Sequence[int], tokens: Sequence[str], ontology: Ontology
) -> str:
  """Decodes action ids (up to the first EOS) into a parse string.

  PAD ids are skipped; a pointer past the source renders as "<oov>" so that a
  bad model output stays visible as an invalid or wrong parse. A copied
  token that the tree grammar would read as a bracket is escaped
  (`as_word`), so a valid action sequence is always a valid tree.
  """
  v, out = len(ontology), []
  for a in actions:
    a = int(a)
    if a == EOS_ID:
      break
    if a == PAD_ID:
      continue
    if a < v:
      out.append(ontology.symbols[a])
    else:
      p = a - v
      out.append(as_word(tokens[p]) if p < len(tokens) else "<oov>")
  return " ".join(out)


def as_word(token: str) -> str:
  """A source token as a word of a parse string: "]" and a leading "["
  become Penn Treebank's -RSB- / -LSB- (a word may be neither)."""
  if token == "]":
    return "-RSB-"
  return "-LSB-" + token[1:] if token.startswith("[") else token


def normalize(parse: str) -> str:
  """Whitespace-normalised parse string."""
  return " ".join(parse.split())


def roundtrip_report(examples, ontology: Ontology) -> dict:
  """Encodes and decodes every example; counts what does not survive.

  Returns a dict with rows, exact (round trip equal), case_only (equal
  but for the casing of copied words: what a copying model can never get
  right, aligned case-insensitively), alignment_failures,
  ontology_failures, mismatches and a few failed ids per kind.
  """
  counts = collections.Counter()
  failed = collections.defaultdict(list)
  for ex in examples:
    counts["rows"] += 1
    try:
      acts = parse_to_actions(ex.parse, ex.tokens, ontology)
    except AlignmentError:
      kind = "alignment_failures"
    except OntologyError:
      kind = "ontology_failures"
    else:
      back, gold = (
        actions_to_parse(acts, ex.tokens, ontology),
        normalize(ex.parse),
      )
      kind = "exact" if back == gold else "mismatches"
      if kind != "exact" and back.casefold() == gold.casefold():
        kind = "case_only"
    counts[kind] += 1
    if kind != "exact" and len(failed[kind]) < 5:
      failed[kind].append(ex.id)
  keys = ("rows", "exact", "case_only", "alignment_failures")
  keys += ("ontology_failures",)
  report = {k: counts[k] for k in keys + ("mismatches",)}
  report["failed_ids"] = dict(failed)
  return report
