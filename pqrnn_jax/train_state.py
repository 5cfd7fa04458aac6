"""Training state: parameters, optimizer and the parameter average.

`TrainState` is flax's, plus `ema`: an exponential moving average of the
parameters, updated after every step when `ema_decay` > 0 (None otherwise).
It is checkpointed and resumed with the rest, and it is what evaluation
scores and best/ keeps when present.
"""

from typing import Any

import jax
import optax
from flax import struct
from flax.training import train_state

from pqrnn_jax import models


class TrainState(train_state.TrainState):
  """flax TrainState with the parameter average as a field.

  Attributes:
    ema: average of the parameters after each step, or None.
    ema_decay: its decay (static); 0 means no average.
  """

  ema: Any = None
  ema_decay: float = struct.field(pytree_node=False, default=0.0)

  @classmethod
  def create(cls, *, params, tx, ema_decay: float = 0.0, **kw):
    ema = params if ema_decay else None
    return super().create(
      apply_fn=None, params=params, tx=tx, ema=ema, ema_decay=ema_decay, **kw
    )

  def apply_gradients(self, *, grads, **kw):
    new = super().apply_gradients(grads=grads, **kw)
    if self.ema is None:
      return new
    ema = optax.incremental_update(new.params, self.ema, 1.0 - self.ema_decay)
    return new.replace(ema=ema)

  def averaged(self) -> "TrainState":
    """This state with the average as its parameters (itself without one)."""
    return self if self.ema is None else self.replace(params=self.ema)


def learning_rate_schedule(train_cfg) -> optax.Schedule:
  """Linear warmup to `learning_rate`, then a cosine decay that ends at
  `end_lr_fraction` of it (0.01 in configs older than the key) at
  `schedule_steps`, or at `num_steps` where that is 0 or absent. A run
  stopped before the end of its schedule is the longer run's first steps."""
  horizon = train_cfg.get("schedule_steps", 0) or train_cfg.num_steps
  return optax.warmup_cosine_decay_schedule(
    0.0,
    train_cfg.learning_rate,
    train_cfg.warmup_steps,
    max(horizon, train_cfg.warmup_steps + 1),
    end_value=train_cfg.learning_rate * train_cfg.get("end_lr_fraction", 0.01),
  )


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  """AdamW on `learning_rate_schedule`, with global-norm clipping."""
  return optax.chain(
    optax.clip_by_global_norm(train_cfg.grad_clip),
    optax.adamw(
      learning_rate_schedule(train_cfg), weight_decay=train_cfg.weight_decay
    ),
  )


def create_train_state(train_cfg, model_cfg, rng) -> TrainState:
  """Fresh float32 parameters (a model may start some from files, e.g. the
  LSTM's pre-trained word vectors) and optimizer state."""
  params = models.init_params(model_cfg, rng)
  params = models.pretrained(model_cfg, params)
  tx = make_optimizer(train_cfg)
  frozen = model_cfg.frozen()
  if frozen:  # No update at all, weight decay included.
    labels = {
      k: jax.tree.map(lambda _, k=k: "frozen" if k in frozen else "train", v)
      for k, v in params.items()
    }
    tx = optax.multi_transform(
      {"train": tx, "frozen": optax.set_to_zero()}, labels
    )
  return TrainState.create(
    params=params,
    tx=tx,
    ema_decay=train_cfg.ema_decay,
  )
