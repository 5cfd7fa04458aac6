"""graph_constraints: decode.py's masks and transitions, by table lookup."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import graph_constraints as gc

# A small ontology: PAD, EOS, "]", two intents, two slots.
KINDS = np.array([0, 1, 2, 3, 3, 4, 4], np.int32)
V, DEPTH, T_MAX = len(KINDS), 4, 6
TABLES = {
  f: gc.tables(KINDS, f, max_depth=DEPTH) for f in ("decoupled", "full")
}


@jax.jit
def _graph_step(tab_arrays, depth, stack, t, max_len, src, action):
  tab = gc.Tables(*tab_arrays, DEPTH)
  ok = gc.allowed(tab, depth, stack, t, max_len, src, gc.has_words(src))
  return ok, gc.transition(tab, depth, stack, action)


@settings(max_examples=120, deadline=None)
@given(
  form=st.sampled_from(["decoupled", "full"]),
  n=st.integers(0, T_MAX),
  max_len=st.integers(3, 16),
  picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=16),
)
def test_mask_and_transition_equal_decode_on_random_trees(
  form, n, max_len, picks
):
  """Walks random allowed actions until the root closes; at every step the
  looked-up mask equals decode.allowed_mask, and the depth and stack equal
  decode.transition's."""
  tab = TABLES[form]
  arrays = tab[:-1]
  src = (np.arange(T_MAX) < n)[None]
  state = decode_lib.init_state(1, np, max_depth=DEPTH)
  depth, stack = gc.init(1, DEPTH)
  for t, pick in enumerate(picks[:max_len]):
    want = decode_lib.allowed_mask(state, KINDS, src, t, max_len, form)[0]
    ok = np.flatnonzero(want)
    action = int(ok[pick % len(ok)])
    got, (depth, stack) = _graph_step(
      arrays, depth, stack, t, max_len, src, jnp.array([action], jnp.int32)
    )
    np.testing.assert_array_equal(np.asarray(got)[0], want)
    state = decode_lib.transition(state, np.array([action]), KINDS, V, np)
    assert int(depth[0]) == int(state.depth[0])
    np.testing.assert_array_equal(
      np.asarray(stack)[0, 2 : 2 + DEPTH], state.stack[0]
    )
    assert bool(gc.closed(depth[0], t + 1)) == bool(state.closed[0])
    if state.closed[0]:
      break


@pytest.mark.parametrize("form", ["decoupled", "full"])
def test_tables_are_small(form):
  tab = TABLES[form]
  assert tab.symbols.shape == (5 * 5 * 2 * 2, V)
  assert tab.window.shape == (6 * 5 * 5, 3)
  # The first action of any tree is an intent: only intents at the start.
  start = tab.symbols[(0 * 5 + 4) * 4 + 3]  # NONE top, budget 3, room, words
  np.testing.assert_array_equal(start, KINDS == 3)


@settings(max_examples=40, deadline=None)
@given(
  form=st.sampled_from(["decoupled", "full"]),
  n=st.integers(1, T_MAX),
  picks=st.lists(st.integers(0, 10**6), min_size=3, max_size=3 * 12),
)
def test_rows_walk_apart_as_decode_batches(form, n, picks):
  """Three hypotheses at once, as in the one-call beam: each row takes its
  own allowed action per step, and the rows' masks and states equal
  decode's batch of three."""
  tab, k, max_len = TABLES[form], 3, 12
  src = np.repeat((np.arange(T_MAX) < n)[None], k, 0)
  state = decode_lib.init_state(k, np, max_depth=DEPTH)
  depth, stack = gc.init(k, DEPTH)
  for t in range(len(picks) // k):
    want = decode_lib.allowed_mask(state, KINDS, src, t, max_len, form)
    if state.closed.any():  # Closed rows allow EOS alone: the beam's case.
      break
    actions = []
    for r in range(k):
      ok = np.flatnonzero(want[r])
      actions.append(int(ok[picks[t * k + r] % len(ok)]))
    actions = np.array(actions, np.int32)
    got, (depth, stack) = _graph_step(
      tab[:-1], depth, stack, t, max_len, src, jnp.asarray(actions)
    )
    np.testing.assert_array_equal(np.asarray(got), want)
    state = decode_lib.transition(state, actions, KINDS, V, np)
    np.testing.assert_array_equal(np.asarray(depth), state.depth)
    np.testing.assert_array_equal(
      np.asarray(stack)[:, 2 : 2 + DEPTH], state.stack
    )
