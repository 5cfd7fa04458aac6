"""Greedy and beam decoding, constrained to well-formed parse trees.

Dims: B batch, K beams, T source tokens, U max target steps, V ontology
symbols, A = V + T actions (symbols, then pointers; see targets.py).

Constraints (ARCHITECTURE.md section 4) are boolean masks over actions,
computed from a small state per hypothesis (`TreeState`): the depth, a stack
of node states and two flags. Mask and transition are written over an array
namespace `xp` (numpy or jax.numpy) so that the on-device numpy driver
applies exactly the rules that the jitted decoders here apply.

Rules: the first action opens "[IN:"; an intent holds "[SL:" (and pointers
in form "full"); a slot holds pointers, or exactly one "[IN:" if it is still
empty; "]" closes an intent or a non-empty slot (in form "full" an empty one
too, as TOP has "[SL:PERSON_REMINDED ]"; in "decoupled" form a slot's
words are its value, so MTOP has no empty slot); EOS only after the root
closed, and then only EOS; PAD never (except as filler after EOS); pointers
only to real source positions; at most `max_depth` open nodes; and a length
cap: an action is allowed only if a valid tree can still be finished within
`max_len` actions after it.

Decoded rows hold actions up to and including EOS, then PAD_ID.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pqrnn_jax import frames as frames_lib
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.model import shift_right
from pqrnn_jax.targets import EOS_ID, FORMS, PAD_ID

# Codes of the per-id kinds of `Ontology.kinds()`; pointers get _PTR.
KIND_CODES = {"pad": 0, "eos": 1, "close": 2, "intent": 3, "slot": 4}
_PTR = len(KIND_CODES)

# Node states on the stack. A slot records whether it is still empty, holds
# words, or holds its single nested intent: that is all the rules need.
NONE, INTENT, SLOT_EMPTY, SLOT_WORDS, SLOT_INTENT = range(5)
MAX_DEPTH = 8


class TreeState(NamedTuple):
  """Per-hypothesis tree state; numpy or jax arrays (a pytree under jax)."""

  depth: Any  # [B] int32: open nodes.
  stack: Any  # [B, MAX_DEPTH] int32 node states, root first, NONE above.
  closed: Any  # [B] bool: the root has closed, so only EOS may follow.
  ended: Any  # [B] bool: EOS was emitted; PAD fills the rest.
  symbols: Any  # [B] int32: "[IN:", "[SL:" and "]" actions so far.


def kinds_array(ontology: targets_lib.Ontology) -> np.ndarray:
  """Kind code per ontology id, [V] int32 (see KIND_CODES)."""
  return np.array([KIND_CODES[k] for k in ontology.kinds()], np.int32)


def init_state(batch: int, xp=np, max_depth: int = MAX_DEPTH) -> TreeState:
  """State before the first action: nothing open, nothing emitted."""
  return TreeState(
    depth=xp.zeros((batch,), xp.int32),
    stack=xp.zeros((batch, max_depth), xp.int32),
    closed=xp.zeros((batch,), bool),
    ended=xp.zeros((batch,), bool),
    symbols=xp.zeros((batch,), xp.int32),
  )


def _top(state: TreeState, xp):
  """State of the innermost open node [B], NONE at depth 0."""
  idx = xp.maximum(state.depth - 1, 0)
  top = xp.take_along_axis(state.stack, idx[:, None], axis=1)[:, 0]
  return xp.where(state.depth > 0, top, NONE)


def _check_form(form: str) -> None:
  if form not in FORMS:
    raise ValueError(f"form={form!r}: choose one of {FORMS}")


def allowed_mask(state, kinds_V, src_mask_BxT, step, max_len, form, xp=np):
  """Allowed actions for the action at index `step`, [B, V + T] bool."""
  _check_form(form)
  depth, top = state.depth, _top(state, xp)
  live = ~state.ended
  room = depth < state.stack.shape[1]
  # Actions that may still follow this one; each test below compares it with
  # the fewest actions that finish a valid tree from the state after it:
  # one "]" per open node, a word for an empty slot, and EOS.
  left = max_len - step - 1
  at_start = (depth == 0) & ~state.closed
  has_words = xp.any(src_mask_BxT, axis=1)
  ptr_top = (top == SLOT_EMPTY) | (top == SLOT_WORDS)
  if form == "full":
    ptr_top = ptr_top | (top == INTENT)
  closable = (top == INTENT) | (top == SLOT_WORDS) | (top == SLOT_INTENT)
  if form == "full":  # TOP has empty slots ("[SL:PERSON_REMINDED ]").
    closable = closable | (top == SLOT_EMPTY)
  ok_intent = live & room & (at_start | (top == SLOT_EMPTY))
  # No slot without source words: nothing could ever fill it.
  ok_slot = live & room & (top == INTENT) & has_words
  per_kind_Bx5 = xp.stack(
    [
      state.ended,  # PAD: only as filler after EOS.
      live & state.closed,
      live & closable & (depth <= left),
      ok_intent & (depth + 2 <= left),
      ok_slot & (depth + 3 <= left),
    ],
    axis=1,
  )
  sym_BxV = xp.take(per_kind_Bx5, xp.asarray(kinds_V), axis=1)
  ok_ptr = live & ptr_top & (depth + 1 <= left)
  return xp.concatenate([sym_BxV, ok_ptr[:, None] & src_mask_BxT], axis=1)


def transition(state, actions_B, kinds_V, vocab_size, xp=np) -> TreeState:
  """State after `actions_B`; any action is accepted (invalid ones too)."""
  is_ptr = actions_B >= vocab_size
  sym = xp.where(is_ptr, 0, actions_B)
  kind = xp.where(is_ptr, _PTR, xp.take(xp.asarray(kinds_V), sym))
  is_intent, is_slot = kind == KIND_CODES["intent"], kind == KIND_CODES["slot"]
  is_close = kind == KIND_CODES["close"]
  depth, stack = state.depth, state.stack
  pos = xp.arange(stack.shape[1])[None, :]
  d = depth[:, None]
  new_node = xp.where(is_intent, INTENT, SLOT_EMPTY)[:, None]
  stack = xp.where((is_intent | is_slot)[:, None] & (pos == d), new_node, stack)
  at_top = pos == d - 1
  filled = is_ptr[:, None] & at_top & (stack == SLOT_EMPTY)
  stack = xp.where(filled, SLOT_WORDS, stack)
  stack = xp.where(is_close[:, None] & at_top, NONE, stack)
  # Only an intent closes into an empty slot: the slot is now complete.
  nested = is_close[:, None] & (pos == d - 2) & (stack == SLOT_EMPTY)
  stack = xp.where(nested, SLOT_INTENT, stack)
  opened = (is_intent | is_slot).astype(xp.int32)
  new_depth = depth + opened - is_close.astype(xp.int32)
  new_depth = xp.clip(new_depth, 0, stack.shape[1]).astype(xp.int32)
  return TreeState(
    depth=new_depth,
    stack=stack,
    closed=state.closed | (is_close & (depth == 1)),
    ended=state.ended | (actions_B == EOS_ID),
    symbols=state.symbols + (is_intent | is_slot | is_close).astype(xp.int32),
  )


def _setup(model, params, fps_BxT, lengths_B, form, copies=1, frame=None):
  """Checks arguments, encodes once, tiles per beam: (vars, memory, mask,
  frame)."""
  _check_form(form)
  if model.config.max_target_len < 3:
    raise ValueError("max_target_len < 3 cannot hold '[IN:X ] EOS'")
  variables = {"params": params}
  memory, mask = model.apply(variables, fps_BxT, lengths_B, method="encode")
  tile = lambda x: jnp.repeat(jnp.asarray(x), copies, axis=0)
  if copies > 1:
    memory, mask = tile(memory), tile(mask)
    frame = None if frame is None else jax.tree.map(tile, frame)
  return variables, memory, mask, frame


def _step_log_probs(
  model, variables, carry, t, kinds, constrained, form, frame=None
):
  """Masked log-probs [N, A] of the next action, and the new cache.

  Log-probs are normalized over all actions before masking, so a score is
  the model's probability of the sequence whatever was masked. A finished
  hypothesis may only add PAD, at no cost, so it keeps its score.
  """
  cache, memory, mask, prev, state = carry
  scores, cache = model.apply(
    variables, cache, memory, mask, prev, method="decode_step"
  )
  logp_NxA = jax.nn.log_softmax(scores, axis=-1)
  a = scores.shape[-1]
  if constrained:
    u = model.config.max_target_len
    ok = allowed_mask(state, kinds, mask, t, u, form, jnp)
    if frame is not None:  # frames.py: the symbols are given.
      v, t_max = model.config.vocab_size, mask.shape[1]
      ok = ok & frames_lib.frame_mask(state, frame, t, u, v, t_max, jnp)
  else:
    ok = jnp.broadcast_to(jnp.arange(a) != PAD_ID, scores.shape)
    ok = jnp.where(state.ended[:, None], (jnp.arange(a) == PAD_ID)[None], ok)
  logp_NxA = jnp.where(state.ended[:, None], 0.0, logp_NxA)
  return jnp.where(ok, logp_NxA, -jnp.inf), cache


def _step_fn(model, variables, kinds, constrained, form, frame):
  """(carry, t) -> (masked log-probs, cache): `_step_log_probs` bound."""
  return functools.partial(
    _step_log_probs,
    model,
    variables,
    kinds=kinds,
    constrained=constrained,
    form=form,
    frame=frame,
  )


@functools.partial(jax.jit, static_argnames=("model", "constrained", "form"))
def greedy_decode(
  model,
  params,
  fps_BxT,
  lengths_B,
  kinds_V,
  frame=None,
  *,
  constrained=True,
  form="decoupled",
):
  """Greedy actions [B, U] int32: up to EOS, then PAD_ID. frame: None, or
  frames.frame_arrays of one frame per row (constrained decoding only)."""
  b, vocab = fps_BxT.shape[0], model.config.vocab_size
  variables, memory, mask, frame = _setup(
    model, params, fps_BxT, lengths_B, form, frame=frame
  )
  cache = model.apply(variables, memory, mask, method="init_cache")
  prev = jnp.full((b,), EOS_ID, jnp.int32)  # BOS is the EOS id.
  log_probs = _step_fn(model, variables, kinds_V, constrained, form, frame)
  u = model.config.max_target_len

  # A while loop that stops once every row is done: rows that ended only
  # add PAD (_step_log_probs), so the actions equal a full U-step scan
  # while a batch of short parses runs only as long as its longest.
  def running(carry):
    t, _, _, state, _ = carry
    return (t < u) & ~jnp.all(_done(state, constrained))

  def step(carry):
    t, cache, prev, state, actions = carry
    logp, cache = log_probs((cache, memory, mask, prev, state), t)
    act = jnp.argmax(logp, axis=-1).astype(jnp.int32)
    state = transition(state, act, kinds_V, vocab, jnp)
    actions = jax.lax.dynamic_update_slice(actions, act[:, None], (0, t))
    return t + 1, cache, act, state, actions

  actions = jnp.full((b, u), PAD_ID, jnp.int32)
  init = (jnp.zeros((), jnp.int32), cache, prev, init_state(b, jnp), actions)
  *_, state, actions = jax.lax.while_loop(running, step, init)
  if not constrained:
    return actions
  # EOS after the last action of each row whose root closed without it.
  at_n = jnp.arange(u)[None] == (actions != PAD_ID).sum(axis=1)[:, None]
  owed = (state.closed & ~state.ended)[:, None]
  return jnp.where(at_n & owed, EOS_ID, actions).astype(jnp.int32)


def _done(state: TreeState, constrained: bool):
  """[B] bool: nothing is left to decide. Under the constraints EOS is the
  only action once the root has closed: no decoder step is run for it."""
  return state.ended | state.closed if constrained else state.ended


def gnmt_penalty(length, alpha):
  """GNMT penalty ((5 + len) / 6) ** alpha (1 at alpha 0), jit or host."""
  return ((5.0 + length) / 6.0) ** alpha


_BEAM_STATIC = ("model", "beam_size", "constrained", "form", "trace")


@functools.partial(jax.jit, static_argnames=_BEAM_STATIC)
def beam_search(
  model,
  params,
  fps_BxT,
  lengths_B,
  kinds_V,
  frame=None,
  *,
  beam_size=4,
  length_penalty=0.6,
  constrained=True,
  form="decoupled",
  trace=False,
):
  """Best hypothesis: (actions [B, U] int32, score [B] float32); `trace`
  adds each step's start (calibration.py): previous actions [U, B * K],
  running sums [U, B * K, D] per layer, log-probs [U, B, K], best [U, B].

  The score is the sum of log-probs through EOS divided by the GNMT length
  penalty. K live hypotheses are extended each step; those ending in EOS
  move to a separate pool of K finished ones, so that live prefixes, which
  only lose score, never push out a finished tree. Under constraints EOS is
  the only action allowed when it is allowed at all, so beam_size=1 is greedy.
  Unconstrained, a row with no finished hypothesis returns its best live one.
  frame: as greedy_decode's (one frame per row, shared by its beams).
  """
  b, k = fps_BxT.shape[0], beam_size
  vocab, u = model.config.vocab_size, model.config.max_target_len
  variables, memory, mask, frame = _setup(
    model, params, fps_BxT, lengths_B, form, copies=k, frame=frame
  )
  carry = _beam_init(
    model.apply(variables, memory, mask, method="init_cache"), b, k, u
  )
  log_probs = _step_fn(model, variables, kinds_V, constrained, form, frame)

  def step(carry, t):
    cache, prev, state, logp_BxK, live_BxKxU, fin_BxK, fin_BxKxU = carry
    start = (prev, cache["sums"], logp_BxK, fin_BxK[:, 0]) if trace else None
    step_NxA, cache = log_probs((cache, memory, mask, prev, state), t)
    a = step_NxA.shape[-1]
    total_BxKxA = logp_BxK[..., None] + step_NxA.reshape(b, k, a)
    # Live hypotheses all have t + 1 actions: rank them by log-prob alone.
    grow_BxKA = total_BxKxA.at[:, :, EOS_ID].set(-jnp.inf).reshape(b, -1)
    logp_BxK, idx_BxK = jax.lax.top_k(grow_BxKA, k)
    beam_BxK, act_BxK = idx_BxK // a, (idx_BxK % a).astype(jnp.int32)
    fin_BxK, fin_BxKxU = _join_finished(
      fin_BxK, fin_BxKxU, live_BxKxU, total_BxKxA, t, length_penalty
    )
    cache, state = _reorder_beams((cache, state), beam_BxK)
    live_BxKxU = jnp.take_along_axis(live_BxKxU, beam_BxK[..., None], 1)
    live_BxKxU = live_BxKxU.at[:, :, t].set(act_BxK)
    act_N = act_BxK.reshape(-1)
    state = transition(state, act_N, kinds_V, vocab, jnp)
    carry = (cache, act_N, state, logp_BxK, live_BxKxU, fin_BxK, fin_BxKxU)
    return carry, start

  carry, starts = jax.lax.scan(step, carry, jnp.arange(u))
  best = _best(*carry[3:], gnmt_penalty(u, length_penalty))
  return (*best, starts) if trace else best


def _beam_init(cache, b: int, k: int, u: int):
  """The scan carry before the first step: (cache, previous actions, tree
  states, live log-probs, live actions, finished scores, finished actions).
  Only beam 0 is live at first, or the K beams would all be the same."""
  logp_BxK = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)
  no_actions = jnp.full((b, k, u), PAD_ID, jnp.int32)
  return (
    cache,
    jnp.full((b * k,), EOS_ID, jnp.int32),  # BOS is the EOS id.
    init_state(b * k, jnp),
    jnp.broadcast_to(logp_BxK, (b, k)),
    no_actions,
    jnp.full((b, k), -jnp.inf),  # Finished: penalized scores, actions.
    no_actions,
  )


def _join_finished(fin_BxK, fin_BxKxU, live_BxKxU, total_BxKxA, t, alpha):
  """The K best of the finished pool and of the live hypotheses ending in
  EOS at step t (penalized scores); earlier ones win ties."""
  k = fin_BxK.shape[1]
  ended_BxKxU = live_BxKxU.at[:, :, t].set(EOS_ID)
  pen = gnmt_penalty(t + 1, alpha)
  pool_Bx2K = jnp.concatenate([fin_BxK, total_BxKxA[..., EOS_ID] / pen], 1)
  fin_BxK, pick_BxK = jax.lax.top_k(pool_Bx2K, k)
  pool_Bx2KxU = jnp.concatenate([fin_BxKxU, ended_BxKxU], axis=1)
  return fin_BxK, jnp.take_along_axis(pool_Bx2KxU, pick_BxK[..., None], 1)


def _reorder_beams(tree, beam_BxK):
  """Rows [B * K, ...] of `tree` in the chosen beams' order; scalars kept."""
  b, k = beam_BxK.shape
  rows_N = (jnp.arange(b)[:, None] * k + beam_BxK).reshape(-1)
  return jax.tree.map(lambda x: x if x.ndim == 0 else x[rows_N], tree)


def _best(logp_BxK, live_BxKxU, fin_BxK, fin_BxKxU, live_penalty):
  """(actions [B, U], score [B]): the best finished hypothesis, else (no
  EOS, unconstrained) the best live one. Pools are sorted: index 0."""
  has_fin = jnp.isfinite(fin_BxK[:, 0])
  live_B = logp_BxK[:, 0] / live_penalty
  actions = jnp.where(has_fin[:, None], fin_BxKxU[:, 0], live_BxKxU[:, 0])
  return actions, jnp.where(has_fin, fin_BxK[:, 0], live_B)


@functools.partial(jax.jit, static_argnames=("model",))
def score_actions(model, params, fps_BxT, lengths_B, actions_BxU):
  """Sum of log-probs [B] of actions through the first EOS (teacher forced)."""
  variables = {"params": params}
  memory, mask = model.apply(variables, fps_BxT, lengths_B, method="encode")
  inputs = shift_right(actions_BxU)
  scores = model.apply(variables, memory, mask, inputs, method="decode")
  logp = jax.nn.log_softmax(scores, axis=-1)
  picked_BxU = jnp.take_along_axis(logp, actions_BxU[..., None], -1)[..., 0]
  is_eos = (actions_BxU == EOS_ID).astype(jnp.int32)
  # Steps up to and including the first EOS count; the PAD filler does not.
  counted = (jnp.cumsum(is_eos, axis=1) - is_eos) == 0
  return jnp.sum(jnp.where(counted, picked_BxU, 0.0), axis=1)


def decode_to_parses(actions_BxU, tokens_list, ontology) -> list[str]:
  """Parse strings of decoded action rows, one per source token list."""
  rows = np.asarray(actions_BxU)
  return [
    targets_lib.actions_to_parse(row, tokens, ontology)
    for row, tokens in zip(rows, tokens_list, strict=True)
  ]
