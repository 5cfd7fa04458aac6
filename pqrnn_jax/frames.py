"""Decoding constrained to a given frame: the parse's symbols are fixed,
only its words (pointers) are predicted.

A frame is a parse without its words, e.g. "[IN:GET_EVENT [SL:DATE_TIME ]
]": intents, slot labels and nesting. Users with weak labels (the intent
and slots are known, not where they are) get a parse whose symbols are
exactly the frame's: annotation projection labels a translated utterance
with the frame of the English parse it translates. A frame with only its
root intent ("[IN:X ]" as a prefix, `prefix=True`) constrains the first
action alone.

Dims: B batch, F frame length (symbols, then EOS, padded with EOS), V
symbols, T source positions. The mask is ANDed with decode.allowed_mask:
the tree rules still hold (a slot gets at least one word before its "]" in
decoupled form) and the frame adds that the next symbol is the frame's
next one, with a length cap that keeps room for the rest of the frame.
"""

import numpy as np

from pqrnn_jax import targets as targets_lib
from pqrnn_jax.targets import EOS_ID


def frame_of(parse: str) -> str:
  """The frame of a parse: its symbols in order, words dropped."""
  targets_lib.read_tree(parse)
  items = parse.split()
  return " ".join(
    t for t in items if t == targets_lib.CLOSE or t.startswith("[")
  )


def frame_ids(frame: str, ontology) -> list[int]:
  """Symbol ids of a frame (OntologyError on an unknown label)."""
  return [ontology.id(t) for t in frame.split()]


def frame_arrays(frames, ontology, max_len: int):
  """(symbols [B, U] int32, need [B, U] int32, free_after [B] int32) of
  frame strings, U = max_len (the decoder's max_target_len).

  symbols: the frame's ids, then EOS (padding too). need[b, k]: the fewest
  actions that finish frame b from its symbol k on: the symbols left (EOS
  included) and a word for each slot that closes with no nested intent.
  free_after: symbols after which the frame stops constraining (F + 1 for
  a full frame; its length for a prefix, written with a trailing "...",
  e.g. "[IN:X ..." fixes only the root intent; 0 for "" or None).
  """
  kinds = ontology.kinds()
  close = ontology.id(targets_lib.CLOSE)
  rows, free = [], []
  for f in frames:
    f = (f or "").strip()
    is_prefix = f.endswith("...")
    ids = frame_ids(f.removesuffix("...").strip(), ontology) if f else []
    rows.append(ids)
    free.append(len(ids) if is_prefix or not ids else max_len + 1)
  width = max_len  # One shape for every batch (one compile).
  long = [i for i, r in enumerate(rows) if len(r) >= width]
  if long:
    raise ValueError(
      f"frame #{long[0]} has {len(rows[long[0]])} symbols: a parse of at "
      f"most {max_len} actions holds fewer"
    )
  symbols = np.full((len(rows), width), EOS_ID, np.int32)
  need = np.zeros((len(rows), width), np.int32)
  for b, ids in enumerate(rows):
    ids = ids + [EOS_ID]
    symbols[b, : len(ids)] = ids
    word = [
      kinds[i] == "slot" and ids[j + 1] == close for j, i in enumerate(ids)
    ]
    later_words = np.cumsum(np.asarray(word, np.int32)[::-1])[::-1]
    need[b, : len(ids)] = len(ids) - np.arange(len(ids)) + later_words
  return symbols, need, np.asarray(free, np.int32)


def frame_mask(state, frame, step, max_len: int, vocab: int, t_max, xp=np):
  """[B, V + T] bool: the actions the frame allows at index `step` (AND it
  with decode.allowed_mask). state.symbols counts the symbols emitted.

  The next symbol must be the frame's next, and only if the rest of the
  frame still fits in max_len; a pointer only where the frame's next
  symbol closes the open node (its words come before that "]") and the
  rest fits after it.
  """
  symbols_BxF, need_BxF, free_B = (xp.asarray(x) for x in frame)
  k = xp.minimum(state.symbols, symbols_BxF.shape[1] - 1)[:, None]
  nxt = xp.take_along_axis(symbols_BxF, k, axis=1)[:, 0]
  need = xp.take_along_axis(need_BxF, k, axis=1)[:, 0]
  left = max_len - step - 1  # Actions that may follow this one.
  sym_BxV = (xp.arange(vocab)[None] == nxt[:, None]) & (need - 1 <= left)[
    :, None
  ]
  close = nxt == targets_lib.RESERVED.index(targets_lib.CLOSE)
  ptr_B = close & (need <= left)
  out = xp.concatenate(
    [sym_BxV, xp.broadcast_to(ptr_B[:, None], (len(ptr_B), t_max))], axis=1
  )
  free = (state.symbols >= free_B)[:, None]
  return out | free
