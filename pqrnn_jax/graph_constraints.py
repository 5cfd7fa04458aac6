"""The tree constraints of the hypotheses inside `parse_<t>`'s and
`beam<K>_<t>`'s loops, as lookups in small tables made from decode.py's
own rules.

decode.allowed_mask and transition, written for any batch over a
TreeState, become about 100 of a greedy loop body's 273 TFLite ops (11.5 us
a step, measured, beside about 45 us for the decoder step). Inside the
one-call loops a live hypothesis never has EOS (the greedy loop exits when
its root closes; a beam hypothesis that takes EOS leaves the beam), and
what the rules read of an open tree is the top node's state, the state of
the node below it, whether the stack has room, whether the source has
words, and the length budget left after the depth (only whether it is
below 0, 1, 2, 3 matters). So the mask is one row of a table indexed by
those, and the transition one write of the three cells (below, top,
above) plus a depth change, indexed by the action's kind, the top and the
node below. `tables` fills them by running decode.allowed_mask and
transition on one state per index: the same rules by construction. A
closed root (EOS alone allowed) is the beam's to mask (parse_graph.py).

State of K hypotheses (1 in the greedy loop, the beam's K in `beam<K>_<t>`):
`depth` int32 [K] and `stack` int32 [K, max_depth + 3], decode's stack
shifted by two cells of NONE, so that for every depth d from 0 the node
below the top, the top and the free cell above are stack[k, d : d + 3].
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from pqrnn_jax import decode as decode_lib
from pqrnn_jax.decode import MAX_DEPTH, NONE

_PTR = len(decode_lib.KIND_CODES)  # Pointers' kind, after the symbols'.
_NODES = 5  # NONE, INTENT, SLOT_EMPTY, SLOT_WORDS, SLOT_INTENT.
_SLACK = (-1, 0, 1, 2, 3)  # Budget left after the depth, clipped.
_KINDS = _PTR + 1  # decode.KIND_CODES, then pointers.


class Tables(NamedTuple):
  """Lookup tables of one ontology, form and max depth (numpy)."""

  symbols: np.ndarray  # [_NODES * 5 * 2 * 2, V] bool, by `_mask_index`.
  pointers: np.ndarray  # [_NODES * 5 * 2 * 2] bool: pointers allowed.
  window: np.ndarray  # [_KINDS * _NODES * _NODES, 3] int32: new cells.
  depth_change: np.ndarray  # [_KINDS * _NODES * _NODES] int32.
  kinds: np.ndarray  # [V + 1] int32: kind per symbol id, then _PTR.
  max_depth: int


def _state(depth: int, cells, max_depth: int) -> decode_lib.TreeState:
  stack = np.full((1, max_depth), NONE, np.int32)
  stack[0, : len(cells)] = cells
  no = np.zeros((1,), bool)
  d = np.array([depth], np.int32)
  return decode_lib.TreeState(d, stack, no, no, np.zeros((1,), np.int32))


def tables(kinds_V, form: str, max_depth: int = MAX_DEPTH) -> Tables:
  """The tables for `allowed` and `transition`, from decode.py's rules."""
  kinds_V = np.asarray(kinds_V, np.int32)
  v, u = len(kinds_V), max_depth + len(_SLACK) + 2
  symbols, pointers = [], []
  for top in range(_NODES):
    for slack in _SLACK:
      for room in (0, 1):
        for words in (False, True):
          depth = 0 if top == NONE else (1 if room else max_depth)
          state = _state(depth, [top] * depth, max_depth)
          step = u - 1 - depth - slack  # left = depth + slack.
          src = np.array([[words]])
          ok = decode_lib.allowed_mask(state, kinds_V, src, step, u, form)[0]
          symbols.append(ok[:v])
          pointers.append(ok[v])
  window, change = [], []
  for kind in range(_KINDS):
    ids = [v] if kind == _PTR else np.flatnonzero(kinds_V == kind)
    for top in range(_NODES):
      for below in range(_NODES):
        cells = [c for c in (below, top) if c != NONE] if top != NONE else []
        state = _state(len(cells), cells, max_depth)
        new = state
        if len(ids):
          action = np.array([ids[0]], np.int32)
          new = decode_lib.transition(state, action, kinds_V, v)
        d = len(cells)
        window.append(
          [new.stack[0, p] if p >= 0 else NONE for p in (d - 2, d - 1, d)]
        )
        change.append(int(new.depth[0]) - d)
  return Tables(
    np.asarray(symbols, bool),
    np.asarray(pointers, bool),
    np.asarray(window, np.int32),
    np.asarray(change, np.int32),
    np.append(kinds_V, _PTR).astype(np.int32),
    max_depth,
  )


def init(rows: int = 1, max_depth: int = MAX_DEPTH):
  """(depth [rows], stack [rows, max_depth + 3]) before the first action."""
  depth = jnp.zeros((rows,), jnp.int32)
  return depth, jnp.full((rows, max_depth + 3), NONE, jnp.int32)


def _mask_index(top, depth, step, max_len: int, max_depth: int, has_words):
  slack = jnp.clip(max_len - 1 - step - depth, -1, 3) + 1
  room = (depth < max_depth).astype(jnp.int32)
  return ((top * len(_SLACK) + slack) * 2 + room) * 2 + has_words


def _cell(stack_KxS, at_K):
  """stack[k, at[k]] for each row [K]: a one-hot select and sum, a few
  elementwise ops where an index would add its clamps and wraps."""
  pos_S = jnp.arange(stack_KxS.shape[1], dtype=jnp.int32)
  return jnp.sum(jnp.where(pos_S == at_K[:, None], stack_KxS, 0), axis=1)


def _rows(table, i):
  # mode="clip": one GATHER (indices are in range by construction).
  return jnp.take(jnp.asarray(table), i, axis=0, mode="clip")


def has_words(src_mask_1xT):
  """int32 []: 1 if the source has a real token (`allowed` reads it)."""
  return jnp.any(src_mask_1xT).astype(jnp.int32)


def allowed(tab: Tables, depth, stack, step, max_len: int, src_mask, words):
  """Allowed actions [K, V + T] bool of K hypotheses (depth [K], stack
  [K, S]) for the action at index `step`, as decode.allowed_mask gives them
  for open, not closed trees; src_mask [1 or K, T]; words:
  `has_words(src_mask)`, computed once per parse."""
  top = _cell(stack, depth + 1)
  i = _mask_index(top, depth, step, max_len, tab.max_depth, words)
  ptr_KxT = _rows(tab.pointers, i)[:, None] & src_mask
  return jnp.concatenate([_rows(tab.symbols, i), ptr_KxT], axis=1)


def transition(tab: Tables, depth, stack, action):
  """(depth, stack) of K hypotheses after their actions [K] int32, as
  decode.transition."""
  v = tab.kinds.shape[0] - 1
  kind = _rows(tab.kinds, jnp.minimum(action, v))
  below, top = _cell(stack, depth), _cell(stack, depth + 1)
  j = (kind * _NODES + top) * _NODES + below
  window_Kx3 = _rows(tab.window, j)
  # The three cells stack[depth : depth + 3] take the window's values.
  rel = jnp.arange(stack.shape[1], dtype=jnp.int32) - depth[:, None]
  for c in range(3):
    stack = jnp.where(rel == c, window_Kx3[:, c : c + 1], stack)
  return depth + _rows(tab.depth_change, j), stack


def closed(depth, step):
  """Whether the root has closed once the action at index `step` is in:
  depth is back to 0 after the first action (always an intent)."""
  return (depth == 0) & (step > 0)
