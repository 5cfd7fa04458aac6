"""decode.py's tree constraints for one hypothesis, in plain Python ints.

The on-device loop decodes one hypothesis at a time. `decode.allowed_mask`
builds [B, V + T] arrays from a batched state (about 100 us of numpy per
step at B = 1); here the state is a tuple of node states, the rules are a
handful of int comparisons, and the symbol mask is a row of a table made
once per ontology: which of the five symbol kinds are allowed is 5 bits,
so 32 rows of V additive scores (0 or -inf) cover every state. The rules
are decode.py's, stated once more for a single hypothesis;
tests/host_constraints_test.py checks on random trees that mask and
transition equal `decode.allowed_mask` and `decode.transition`.
"""

from typing import NamedTuple

import numpy as np

from pqrnn_jax import decode as decode_lib
from pqrnn_jax.decode import INTENT, NONE, SLOT_EMPTY, SLOT_INTENT, SLOT_WORDS
from pqrnn_jax.targets import EOS_ID

_K = decode_lib.KIND_CODES
_PAD, _EOS, _CLOSE = 1 << _K["pad"], 1 << _K["eos"], 1 << _K["close"]
_OPEN_INTENT, _OPEN_SLOT = 1 << _K["intent"], 1 << _K["slot"]


class HostState(NamedTuple):
  """One hypothesis: open node states root first (decode.TreeState's stack
  up to its depth), whether the root closed, whether EOS came."""

  stack: tuple = ()
  closed: bool = False
  ended: bool = False


class Constraints:
  """Allowed actions and transitions of one hypothesis.

  Attributes:
    rows: float32 [32, V]: additive symbol scores (0 allowed, -inf not)
      for each 5-bit code of allowed kinds (bit = decode.KIND_CODES).
  """

  def __init__(self, kinds_V, form: str, max_len: int, max_depth=None):
    decode_lib._check_form(form)
    self.kinds = [int(k) for k in kinds_V]
    self.vocab = len(self.kinds)
    self.max_len = max_len
    self.max_depth = max_depth or decode_lib.MAX_DEPTH
    full = form == "full"
    self._ptr_tops = {SLOT_EMPTY, SLOT_WORDS} | ({INTENT} if full else set())
    closable = {INTENT, SLOT_WORDS, SLOT_INTENT}
    self._closable = closable | ({SLOT_EMPTY} if full else set())
    bits = (np.arange(32)[:, None] >> np.asarray(self.kinds)[None]) & 1
    self.rows = np.where(bits == 1, 0.0, -np.inf).astype(np.float32)

  def allowed(self, state: HostState, step: int, has_words: bool):
    """(code, pointers): the row of `rows` for the action at index
    `step`, and whether pointers (to real positions) are allowed."""
    if state.ended:
      return _PAD, False
    depth = len(state.stack)
    top = state.stack[-1] if depth else NONE
    left = self.max_len - step - 1  # Actions that may still follow.
    room = depth < self.max_depth
    code = _EOS if state.closed else 0
    if top in self._closable and depth <= left:
      code |= _CLOSE
    at_start = depth == 0 and not state.closed
    if room and (at_start or top == SLOT_EMPTY) and depth + 2 <= left:
      code |= _OPEN_INTENT
    if room and top == INTENT and has_words and depth + 3 <= left:
      code |= _OPEN_SLOT
    return code, top in self._ptr_tops and depth + 1 <= left

  def transition(self, state: HostState, action: int) -> HostState:
    """State after an allowed `action` (decode.transition's rules)."""
    if action == EOS_ID:
      return state._replace(ended=True)
    stack = state.stack
    if action >= self.vocab:  # A pointer fills an empty slot.
      if stack and stack[-1] == SLOT_EMPTY:
        stack = stack[:-1] + (SLOT_WORDS,)
      return state._replace(stack=stack)
    kind = self.kinds[action]
    if kind in (_K["intent"], _K["slot"]):
      if len(stack) < self.max_depth:
        node = INTENT if kind == _K["intent"] else SLOT_EMPTY
        stack = stack + (node,)
      return state._replace(stack=stack)
    if kind == _K["close"] and stack:
      closed = state.closed or len(stack) == 1
      stack = stack[:-1]
      if stack and stack[-1] == SLOT_EMPTY:  # Its nested intent closed.
        stack = stack[:-1] + (SLOT_INTENT,)
      return HostState(stack, closed, state.ended)
    return state
