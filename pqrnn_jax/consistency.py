"""R-Drop (Liang et al. 2021): each batch through the model twice, with
two dropout masks; the loss is both passes' cross-entropy plus alpha times
the symmetric KL between their action distributions.

Why: ensembles of independent runs score 1.5 EM above their members on
MTOP en (docs/RESULTS.md), so much of a single model's error is variance;
asking the model to agree with itself across dropout masks is a cheap
self-ensemble at training time, at no cost in the exported file.
"""

import jax

from pqrnn_jax import distill, train_step


def symmetric_kl_sums(a_BxUxA, b_BxUxA, weights_BxU):
  """(KL(a || b) + KL(b || a)) / 2 over weighted steps, summed; gradients
  reach both sides."""
  return 0.5 * (
    distill.kd_loss_sums(a_BxUxA, b_BxUxA, weights_BxU, 1.0)
    + distill.kd_loss_sums(b_BxUxA, a_BxUxA, weights_BxU, 1.0)
  )


def make_rdrop_loss_fn(model, label_smoothing: float, alpha: float):
  """Mean cross-entropy of two dropout passes + alpha * their symmetric
  KL; the sums are the two passes' means, plus `rdrop` (the KL)."""

  def loss_fn(params, batch, rng, frozen=None):
    del frozen
    passes = [
      train_step.student_scores(model, params, batch, r)
      for r in jax.random.split(rng)
    ]
    sums = jax.tree.map(
      lambda x, y: (x + y) / 2,
      *[
        train_step.loss_sums(
          s, batch["targets"], batch["weights"], label_smoothing
        )
        for s in passes
      ],
    )
    sums["rdrop"] = symmetric_kl_sums(*passes, batch["weights"])
    return sums["loss"] + alpha * sums["rdrop"], sums

  return loss_fn
