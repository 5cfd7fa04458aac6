"""The loss and the pmapped train step.

A loss function maps (params, batch, rng, frozen) to (loss, sums): `sums`
are per-batch sums (loss, nll, correct, tokens, ...) that the loop turns
into per-token metrics; `frozen` are parameters the loss reads but does not
train (a distillation teacher's, see distill.make_kd_loss_fn), or None.
`train_step` is the same for every loss.
"""

import jax
import jax.numpy as jnp
import optax

from pqrnn_jax import model as model_lib
from pqrnn_jax import packing


def loss_sums(scores_BxUxA, targets_BxU, weights_BxU, label_smoothing):
  """Label-smoothed cross-entropy, summed; smoothing mass goes only to
  actions that are possible (finite score), never to -inf entries."""
  logp = jax.nn.log_softmax(scores_BxUxA.astype(jnp.float32), axis=-1)
  valid = jnp.isfinite(scores_BxUxA)
  logp = jnp.where(valid, logp, 0.0)
  gold = jnp.take_along_axis(logp, targets_BxU[..., None], axis=-1)[..., 0]
  uniform = logp.sum(-1) / jnp.maximum(valid.sum(-1), 1)
  nll = -((1.0 - label_smoothing) * gold + label_smoothing * uniform)
  correct = (jnp.argmax(scores_BxUxA, -1) == targets_BxU) * weights_BxU
  return {
    "loss": (nll * weights_BxU).sum(),
    "nll": (-gold * weights_BxU).sum(),
    "correct": correct.sum(),
    "tokens": weights_BxU.sum(),
  }


def packed_kwargs(batch) -> dict:
  """`packed=` for the model when the batch is packed (packing.py): the
  row's examples follow each other, so shift_right gives every segment
  its BOS (the EOS id ending the one before)."""
  packed = packing.model_inputs(batch)
  return {} if packed is None else {"packed": packed}


def student_scores(model, params, batch, rng):
  """Teacher-forced training-mode scores [B, U, A] of `model`."""
  return model.apply(
    {"params": params},
    batch["fingerprints"],
    batch["lengths"],
    model_lib.shift_right(batch["targets"]),
    deterministic=False,
    rngs={"dropout": rng},
    **packed_kwargs(batch),
  )


def make_loss_fn(model, label_smoothing: float):
  """Cross-entropy against the gold actions."""

  def loss_fn(params, batch, rng, frozen=None):
    del frozen
    scores = student_scores(model, params, batch, rng)
    sums = loss_sums(
      scores, batch["targets"], batch["weights"], label_smoothing
    )
    return sums["loss"], sums

  return loss_fn


def _psum(tree):
  """psum over the "batch" axis; with one device, the tree itself: XLA:CPU
  still copies every gradient through an all-reduce of one."""
  if jax.lax.axis_size("batch") == 1:
    return tree
  return jax.lax.psum(tree, "batch")


def train_step(
  state, batch, rng, frozen=None, *, loss_fn, tokens_per_batch=None
):
  """One pmapped step (axis "batch") on this device's slice of the batch:
  (new state, sums over the global batch, with the gradient norm).

  tokens_per_batch: the loss is its token sum over this constant (the
  data's mean target tokens per global batch, input_pipeline.Batches), so
  every token weighs the same in every batch; None: over this batch's own
  token count. Length buckets make the difference: a bucket's last, short
  batch of a few examples would otherwise move the parameters as far as a
  full one (token weights 0.4x to 9.7x with 8 buckets on MTOP en).
  """
  rng = jax.random.fold_in(
    jax.random.fold_in(rng, state.step), jax.lax.axis_index("batch")
  )
  # Normalise by a global token count, then sum gradients over devices:
  # that is the gradient of the global-batch mean, whatever each device's
  # share of real tokens (a pmean of per-device means would not be).
  total = tokens_per_batch
  if total is None:
    total = _psum(batch["weights"].sum())

  def normalised(params):
    loss, sums = loss_fn(params, batch, rng, frozen)
    return loss / jnp.maximum(total, 1.0), sums

  grads, sums = jax.grad(normalised, has_aux=True)(state.params)
  grads = _psum(grads)
  sums = _psum(sums)
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads), sums
