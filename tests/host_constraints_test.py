"""host_constraints: the same mask and transitions as decode.py's arrays."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import host_constraints

# A small ontology: PAD, EOS, "]", two intents, two slots.
KINDS = np.array([0, 1, 2, 3, 3, 4, 4], np.int32)
V = len(KINDS)


def _as_host(state: decode_lib.TreeState) -> host_constraints.HostState:
  d = int(state.depth[0])
  return host_constraints.HostState(
    tuple(int(x) for x in state.stack[0, :d]),
    bool(state.closed[0]),
    bool(state.ended[0]),
  )


def _host_mask(cons, host, t, n, t_max):
  code, ptr = cons.allowed(host, t, n > 0)
  sym = np.isfinite(cons.rows[code])
  return np.concatenate([sym, np.arange(t_max) < n if ptr else [False] * t_max])


@settings(max_examples=150, deadline=None)
@given(
  form=st.sampled_from(["decoupled", "full"]),
  n=st.integers(1, 5),
  max_len=st.integers(3, 14),
  picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=14),
)
def test_mask_and_transition_equal_decode_on_random_trees(
  form, n, max_len, picks
):
  """Walks random allowed actions; at every step the host mask equals
  decode.allowed_mask and the host state equals decode.transition's."""
  t_max = 6
  src = (np.arange(t_max) < n)[None]
  cons = host_constraints.Constraints(KINDS, form, max_len, max_depth=4)
  state = decode_lib.init_state(1, np, max_depth=4)
  host = host_constraints.HostState()
  for t, pick in enumerate(picks[:max_len]):
    want = decode_lib.allowed_mask(state, KINDS, src, t, max_len, form, np)[0]
    got = _host_mask(cons, host, t, n, t_max)
    np.testing.assert_array_equal(got, want)
    ok = np.flatnonzero(want)
    assert len(ok), "the length cap always leaves an action"
    action = int(ok[pick % len(ok)])
    state = decode_lib.transition(state, np.array([action]), KINDS, V, np)
    host = cons.transition(host, action)
    assert host == _as_host(state)
    if action == decode_lib.EOS_ID:
      break


def test_rows_cover_every_kind_code():
  cons = host_constraints.Constraints(KINDS, "decoupled", 10)
  assert cons.rows.shape == (32, V)
  # Code 0 allows nothing; code 31 everything; bit k allows kind k.
  assert np.isneginf(cons.rows[0]).all() and (cons.rows[31] == 0).all()
  for k in range(5):
    np.testing.assert_array_equal(cons.rows[1 << k] == 0, KINDS == k)
