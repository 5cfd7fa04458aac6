"""`parse_<t>` signatures: a whole constrained greedy parse in one call.

  fingerprints int32 [1, t(, 1 + K)], length int32 [1]
    -> actions int32 [1, U] (ids as in targets.py, through EOS, then PAD),
       num_actions int32 [1] (EOS included)

Inside: `encode` at t, then a `lax.while_loop` (a TFLite WHILE) over the
same `decode_step` the host loop calls, at the same t, with decode.py's
tree constraints as table lookups (graph_constraints.py: the rules the
jitted decoders and host_constraints.py apply), a masked argmax (a tie
goes to the symbol, as in the host loop) and an exit when the root closes
(EOS, then the only action allowed, is written without a step). Builtin ops
only, so an app makes one interpreter call per utterance. `beam<K>_<t>`
(`beam_fn`, same inputs and outputs) is the beam-K search in one call.

One signature per length bucket, not one that picks its bucket in the
graph: the converter turns `lax.switch` into an IF / STABLEHLO_CASE whose
operands are all the encoder's weights, copied on every call (an encode of
bucket 12 then takes 2.7x as long), and whose branches it wires with one
operand in the place of another. A signature at T_max alone would encode
every utterance at T_max (encode at 24 tokens already takes 2.7x as long
as at 12, docs/RESULTS.md).
"""

import jax
import jax.numpy as jnp

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import graph_constraints
from pqrnn_jax.decoder import FLOAT_SCOPE
from pqrnn_jax.model import source_mask
from pqrnn_jax.targets import EOS_ID, PAD_ID
from pqrnn_jax.tflite_signatures import (
  signature_fns,
  signature_specs,
  state_names,
)


def parse_specs(model_cfg, t: int | None = None) -> dict:
  """{"inputs"|"outputs": [(name, shape, dtype)]} of `parse_<t>`."""
  enc = signature_specs(model_cfg, t)["encode"]
  u = model_cfg.max_target_len
  return {
    "inputs": enc["inputs"],
    "outputs": [
      ("actions", (1, u), "int32"),
      ("num_actions", (1,), "int32"),
    ],
  }


def _step_io(model_cfg, params, kind: str):
  """(signature functions, step(encoded, prev, t, length, state) -> the
  `kind` step's outputs, {decoder state name: shape of one row})."""
  fns = signature_fns(model_cfg, params)
  specs = signature_specs(model_cfg)
  inputs = [n for n, _, _ in specs["decode_step"]["inputs"]]
  shapes = {n: s for n, s, _ in specs["decode_step"]["inputs"]}

  def step(encoded, prev, t, length, state):
    named = dict(encoded, prev_action=prev, step=t[None], length=length)
    named.update(state)
    return fns[kind](*[named[n] for n in inputs])

  return fns, step, {n: shapes[n] for n in state_names(specs)}


def parse_fn(model_cfg, params, kinds_V, form: str):
  """The JAX function behind `parse_<t>`: (fingerprints [1, t(, C)],
  length [1]) -> {"actions": [1, U], "num_actions": [1]}; t is read from
  the input."""
  fns, step_fn, state_shapes = _step_io(model_cfg, params, "decode_step")
  u = model_cfg.max_target_len
  tab = graph_constraints.tables(kinds_V, form)

  def parse(fingerprints, length):
    enc = fns["encode"](fingerprints, length)
    mask_1xT = source_mask(length, fingerprints.shape[1])
    words = graph_constraints.has_words(mask_1xT)

    # The loop stops when the root closes: EOS, then the only action
    # allowed, is written after the loop without running the decoder.
    def running(carry):
      t, _, _, (depth, _), _ = carry
      return (t < u) & ~graph_constraints.closed(depth[0], t)

    def step(carry):
      t, prev, state, (depth, stack), actions = carry
      out = step_fn(enc, prev, t, length, state)
      ok = graph_constraints.allowed(tab, depth, stack, t, u, mask_1xT, words)
      # -inf where masked: no int8 range holds it, so int8 files keep the
      # masked argmax in float (loop_calibration.py).
      with jax.named_scope(FLOAT_SCOPE):
        scores = jnp.concatenate(
          [out["symbol_scores"], out["pointer_scores"]], axis=-1
        )
        act = jax.lax.argmax(_masked(ok, scores), 1, jnp.int32)
      tree = graph_constraints.transition(tab, depth, stack, act)
      actions = jax.lax.dynamic_update_slice(actions, act[None], (0, t))
      return t + 1, act, {n: out[n] for n in state_shapes}, tree, actions

    init = (
      jnp.zeros((), jnp.int32),
      jnp.full((1,), EOS_ID, jnp.int32),  # BOS is the EOS id.
      {n: jnp.zeros(sh, jnp.float32) for n, sh in state_shapes.items()},
      graph_constraints.init(),
      jnp.full((1, u), PAD_ID, jnp.int32),
    )
    t, _, _, (depth, _), actions = jax.lax.while_loop(running, step, init)
    done = graph_constraints.closed(depth[0], t)
    eos = (jnp.arange(u)[None] == t) & done
    actions = jnp.where(eos, EOS_ID, actions).astype(jnp.int32)
    return {"actions": actions, "num_actions": (t + done.astype(t.dtype))[None]}

  return parse


def _masked(keep, x):
  """x where `keep` (broadcast to x), -inf elsewhere. In FLOAT_SCOPE, int8
  files must see these ops under the scope's name: jnp.where, jnp.argmax
  and jax.nn.log_softmax trace through inner jits and custom rules whose
  ops lose the name, and get quantized (the greedy argmax then compared
  int8 scores, which near-ties flip); lax's own ops keep it."""
  keep = jnp.broadcast_to(keep, x.shape)
  return jax.lax.select(keep, x, jnp.full(x.shape, -jnp.inf, x.dtype))


def _log_softmax(x_KxA):
  """log_softmax over the last axis in lax ops (see `_masked`); each row
  has a finite entry."""
  shifted = x_KxA - jax.lax.reduce_max(x_KxA, (1,))[:, None]
  norm = jnp.log(jax.lax.reduce_sum(jnp.exp(shifted), (1,)))
  return shifted - norm[:, None]


def _top_k(x_N, k: int):
  """(values, indices) of the k largest of x_N, ties to the lower index,
  as lax.top_k; by k argmaxes, since the converter cannot read lax.top_k's
  StableHLO composite (a float graph fails to convert). Each value is the
  max (one op) rather than x_N[i] (an index's clamps and wraps: seven)."""
  values, indices = [], []
  for j in range(k):
    i = jax.lax.argmax(x_N, 0, jnp.int32)
    values.append(jax.lax.reduce_max(x_N, (0,)))
    indices.append(i)
    if j < k - 1:
      x_N = _masked(jnp.arange(x_N.shape[0]) != i, x_N)
  return jnp.stack(values), jnp.stack(indices)


def _take(x, rows):
  """x[rows] along axis 0 by one lax.gather: rows are in range (no index
  wraps), and the op keeps its name scope (jnp.take's does not)."""
  dims = jax.lax.GatherDimensionNumbers(
    offset_dims=tuple(range(1, x.ndim)),
    collapsed_slice_dims=(0,),
    start_index_map=(0,),
  )
  return jax.lax.gather(
    x,
    rows[:, None],
    dims,
    (1, *x.shape[1:]),
    mode=jax.lax.GatherScatterMode.CLIP,
  )


def _beam_init(k: int, u: int, state_widths: dict):
  """The loop's carry before the first step: (step, previous actions, live
  log-probs, live actions, tree states, best finished score [1] and
  actions [1, U], decoder state). Only hypothesis 0 is live at first."""
  no_actions = jnp.full((k, u), PAD_ID, jnp.int32)
  return (
    jnp.zeros((), jnp.int32),
    jnp.full((k,), EOS_ID, jnp.int32),  # BOS is the EOS id.
    jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf),
    no_actions,
    graph_constraints.init(k),
    jnp.full((1,), -jnp.inf),
    no_actions[:1],
    {n: jnp.zeros((k, w), jnp.float32) for n, w in state_widths.items()},
  )


def _join_finished(fin_1, fin_1xU, live_KxU, total_KxA, t, alpha):
  """The best of the finished one and of the live hypotheses ending in EOS
  at step t (log-prob over the GNMT penalty); earlier ones win ties, as in
  decode.beam_search. Only the best is kept: the search stops on it and
  returns it."""
  eos = jnp.full((live_KxU.shape[0], 1), EOS_ID, jnp.int32)
  ended_KxU = jax.lax.dynamic_update_slice(live_KxU, eos, (0, t))
  pen = decode_lib.gnmt_penalty(t + 1.0, alpha)
  pool = jnp.concatenate([fin_1, total_KxA[:, EOS_ID] / pen])
  fin_1, pick = _top_k(pool, 1)
  return fin_1, _take(jnp.concatenate([fin_1xU, ended_KxU]), pick)


def _beam_allowed(tab, tree, t, u: int, mask_1xT, words):
  """[K, V + T] allowed actions of the beam's hypotheses: the greedy loop's
  table rows, and EOS alone where the root has closed (decode.allowed_mask;
  a live hypothesis has no EOS: it moves to the finished one)."""
  depth, stack = tree
  ok = graph_constraints.allowed(tab, depth, stack, t, u, mask_1xT, words)
  eos_A = jnp.arange(ok.shape[1]) == EOS_ID
  return jnp.where(graph_constraints.closed(depth, t)[:, None], eos_A, ok)


def beam_fn(model_cfg, params, kinds_V, form: str, k: int, alpha=0.6):
  """The JAX function behind `beam<k>_<t>`: `decode.beam_search` (beam k,
  GNMT penalty alpha, constrained) in one call, same inputs and outputs as
  `parse_fn`. The k hypotheses are the rows of one `decode_step` (k
  queries of the one encoder cache: `decode_step_k<k>`); the loop ends
  once no live hypothesis can beat the best finished one (as
  `TFLiteParser.beam_decode`), which gives the full scan's result."""
  fns, step_fn, state_shapes = _step_io(model_cfg, params, "beam_step")
  u, vocab = model_cfg.max_target_len, len(kinds_V)
  tab = graph_constraints.tables(kinds_V, form)
  pen = decode_lib.gnmt_penalty

  def beam(fingerprints, length):
    enc = fns["encode"](fingerprints, length)
    mask_1xT = source_mask(length, fingerprints.shape[1])
    words = graph_constraints.has_words(mask_1xT)
    # Normalized over every action but PAD and pointers past the source:
    # the same for every step, so built once, outside the loop.
    no_pad_1xV = (jnp.arange(vocab) != PAD_ID)[None]
    norm_1xA = jnp.concatenate([no_pad_1xV, mask_1xT], axis=1)

    def running(c):
      t, logp, fin = c[0], c[2], c[5]
      can_win = jnp.max(logp) / pen(u, alpha) > fin[0]
      return (t < u) & jnp.isfinite(jnp.max(logp)) & can_win

    def step(c):
      t, prev, logp, live, tree, fin, fin_acts, st = c
      out = step_fn(enc, prev, t, length, st)
      ok = _beam_allowed(tab, tree, t, u, mask_1xT, words)
      with jax.named_scope(FLOAT_SCOPE):  # Scores summed over steps, -inf.
        scores = jnp.concatenate(
          [out["symbol_scores"], out["pointer_scores"]], axis=-1
        )
        step_KxA = _log_softmax(_masked(norm_1xA, scores))
        total = logp[:, None] + _masked(ok, step_KxA)
        a = total.shape[-1]
        grow = _masked(jnp.arange(a) != EOS_ID, total).reshape(-1)
        logp, idx = _top_k(grow, k)
        fin, fin_acts = _join_finished(fin, fin_acts, live, total, t, alpha)
      # idx >= 0: truncating division, without floor division's sign fixes.
      rows = jax.lax.div(idx, jnp.int32(a))
      act = idx - rows * a
      live = _take(live, rows)
      live = jax.lax.dynamic_update_slice(live, act[:, None], (0, t))
      tree = jax.tree.map(lambda x: _take(x, rows), tree)
      tree = graph_constraints.transition(tab, *tree, act)
      with jax.named_scope(FLOAT_SCOPE):  # The running sums (decoder.py).
        st = {n: _take(out[n], rows) for n in state_shapes}
      return t + 1, act, logp, live, tree, fin, fin_acts, st

    init = _beam_init(k, u, {n: sh[-1] for n, sh in state_shapes.items()})
    c = jax.lax.while_loop(running, step, init)
    live, fin, fin_acts = c[3], c[5], c[6]
    best = jnp.where(jnp.isfinite(fin[0]), fin_acts[0], live[0])[None]
    num = jnp.sum(best != PAD_ID, axis=1).astype(jnp.int32)
    return {"actions": best, "num_actions": num}

  return beam
