"""`parse_<t>` signatures: a whole constrained greedy parse in one call.

  fingerprints int32 [1, t(, 1 + K)], length int32 [1]
    -> actions int32 [1, U] (ids as in targets.py, through EOS, then PAD),
       num_actions int32 [1] (EOS included)

Inside: `encode` at t, then a `lax.while_loop` (a TFLite WHILE) over the
same `decode_step` the host loop calls, at the same t, with decode.py's
tree constraints on tensors (`allowed_mask`, `transition`: the rules the
jitted decoders and host_constraints.py apply), a masked argmax (a tie
goes to the symbol, as in the host loop) and an exit at EOS. Builtin ops
only, so an app makes one interpreter call per utterance.

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
import numpy as np

from pqrnn_jax import decode as decode_lib
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


def parse_fn(model_cfg, params, kinds_V, form: str):
  """The JAX function behind `parse_<t>`: (fingerprints [1, t(, C)],
  length [1]) -> {"actions": [1, U], "num_actions": [1]}; t is read from
  the input."""
  fns = signature_fns(model_cfg, params)
  specs = signature_specs(model_cfg)
  step_inputs = [n for n, _, _ in specs["decode_step"]["inputs"]]
  state = state_names(specs)
  state_shapes = {n: s for n, s, _ in specs["decode_step"]["inputs"]}
  u, vocab = model_cfg.max_target_len, len(kinds_V)
  kinds = np.asarray(kinds_V, np.int32)

  def parse(fingerprints, length):
    enc = fns["encode"](fingerprints, length)
    mask_1xT = source_mask(length, fingerprints.shape[1])

    def running(carry):
      t, _, _, tree, _ = carry
      return (t < u) & ~tree.ended[0]

    def step(carry):
      t, prev, sums, tree, actions = carry
      named = dict(enc, prev_action=prev, step=t[None], length=length, **sums)
      out = fns["decode_step"](*[named[n] for n in step_inputs])
      scores = jnp.concatenate(
        [out["symbol_scores"], out["pointer_scores"]], axis=-1
      )
      ok = decode_lib.allowed_mask(tree, kinds, mask_1xT, t, u, form, jnp)
      act = jnp.argmax(jnp.where(ok, scores, -jnp.inf), axis=-1)
      act = act.astype(jnp.int32)
      tree = decode_lib.transition(tree, act, kinds, vocab, jnp)
      actions = jax.lax.dynamic_update_slice(actions, act[None], (0, t))
      return t + 1, act, {n: out[n] for n in state}, tree, actions

    init = (
      jnp.zeros((), jnp.int32),
      jnp.full((1,), EOS_ID, jnp.int32),  # BOS is the EOS id.
      {n: jnp.zeros(state_shapes[n], jnp.float32) for n in state},
      decode_lib.init_state(1, jnp),
      jnp.full((1, u), PAD_ID, jnp.int32),
    )
    t, *_, actions = jax.lax.while_loop(running, step, init)
    return {"actions": actions, "num_actions": t[None]}

  return parse
