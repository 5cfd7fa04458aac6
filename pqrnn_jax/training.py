"""Data-parallel training under jax.pmap, with orbax resume and evaluation.

One process drives its local devices with `jax.pmap(axis_name="batch")`:
parameters are replicated, each device takes a slice of the global batch,
and gradients are summed across devices. Everything a run needs to continue
(state, resolved config, ontology) is in the checkpoint; the data order and
the dropout rngs are functions of the step, so a run killed and resumed ends
with the same parameters as one that was not interrupted.
"""

import dataclasses
import functools
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, periodic_actions
from flax.training import train_state

from pqrnn_jax import augment, checkpoints, distill, input_pipeline
from pqrnn_jax import evaluate as evaluate_lib
from pqrnn_jax import lstm as lstm_lib
from pqrnn_jax import model as model_lib
from pqrnn_jax import targets as targets_lib

TrainState = train_state.TrainState


class ParamsEmaState(NamedTuple):
  ema: optax.Params  # Exponential moving average of the parameters.


def params_ema(decay: float) -> optax.GradientTransformation:
  """Keeps an exponential moving average of the parameters in the optimizer
  state (so it is checkpointed and resumed with it); updates pass through.

  Last in a chain: `params + updates` are the parameters after this step.
  """

  def init_fn(params):
    return ParamsEmaState(ema=jax.tree.map(jnp.asarray, params))

  def update_fn(updates, state, params):
    new = optax.apply_updates(params, updates)
    return updates, ParamsEmaState(
      ema=optax.incremental_update(new, state.ema, 1.0 - decay)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def ema_params(opt_state):
  """The parameter average of `params_ema` in an optimizer state, or None."""
  found = optax.tree_utils.tree_get_all_with_path(opt_state, "ema")
  return found[0][1] if found else None


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  """AdamW with linear warmup, cosine decay and global-norm clipping; with
  `ema_decay`, also an average of the parameters (params_ema)."""
  schedule = optax.warmup_cosine_decay_schedule(
    0.0,
    train_cfg.learning_rate,
    train_cfg.warmup_steps,
    max(train_cfg.num_steps, train_cfg.warmup_steps + 1),
    end_value=train_cfg.learning_rate * 0.01,
  )
  parts = [
    optax.clip_by_global_norm(train_cfg.grad_clip),
    optax.adamw(schedule, weight_decay=train_cfg.weight_decay),
  ]
  if train_cfg.ema_decay:
    parts.append(params_ema(train_cfg.ema_decay))
  return optax.chain(*parts)


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


def train_step(
  state,
  batch,
  rng,
  teacher_params=None,
  *,
  model,
  label_smoothing,
  teacher=None,
  kd_alpha=0.0,
  kd_temperature=1.0,
):
  """One pmapped step on this device's slice of the global batch.

  With a `teacher` (a frozen model sharing the ontology), the loss is
  (1 - kd_alpha) * CE + kd_alpha * T^2 KL(teacher || student).
  """
  rng = jax.random.fold_in(
    jax.random.fold_in(rng, state.step), jax.lax.axis_index("batch")
  )
  # Normalise by the global token count, then sum gradients over devices:
  # that is the gradient of the global-batch mean, whatever each device's
  # share of real tokens (a pmean of per-device means would not be).
  total = jax.lax.psum(batch["weights"].sum(), "batch")

  inputs = model_lib.shift_right(batch["targets"])
  if teacher is not None:
    teacher_scores = jax.lax.stop_gradient(
      teacher.apply(
        {"params": teacher_params},
        model_lib.select_fingerprints(
          batch["fingerprints"],
          model.config.token_features,
          teacher.config.token_features,
        ),
        batch["lengths"],
        inputs,
      )
    )

  def loss_fn(params):
    scores = model.apply(
      {"params": params},
      batch["fingerprints"],
      batch["lengths"],
      inputs,
      deterministic=False,
      rngs={"dropout": rng},
    )
    sums = loss_sums(
      scores, batch["targets"], batch["weights"], label_smoothing
    )
    loss = sums["loss"]
    if teacher is not None:
      sums["kd"] = distill.kd_loss_sums(
        scores, teacher_scores, batch["weights"], kd_temperature
      )
      loss = (1.0 - kd_alpha) * loss + kd_alpha * sums["kd"]
    return loss / jnp.maximum(total, 1.0), sums

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  grads = jax.lax.psum(grads, "batch")
  sums = jax.lax.psum(sums, "batch")
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads), sums


def create_train_state(config, model_cfg, rng) -> TrainState:
  """Fresh float32 parameters and optimizer state."""
  params = model_lib.init_params(model_cfg, rng)
  if model_cfg.embedding_file:  # LSTM baseline: pre-trained word vectors.
    params, _ = lstm_lib.load_embeddings(params, model_cfg)
  return TrainState.create(
    apply_fn=None, params=params, tx=make_optimizer(config.train)
  )


# -- The loop -------------------------------------------------------------


class _StopFlag:
  """Set by SIGTERM/SIGINT: the loop saves a checkpoint and returns."""

  def __init__(self):
    self.event = threading.Event()

  def __enter__(self):
    self.old = {}
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self.old[sig] = signal.signal(sig, self._handle)
    return self.event

  def _handle(self, signum, frame):
    logging.warning("signal %d: saving a checkpoint and stopping", signum)
    self.event.set()

  def __exit__(self, *exc):
    for sig, handler in self.old.items():
      signal.signal(sig, handler)


def _shard(batch, n: int):
  return jax.tree.map(lambda x: x.reshape(n, -1, *x.shape[1:]), batch)


def _check_finite(sums: dict, step: int) -> None:
  if not np.isfinite(sums["loss"]):
    raise FloatingPointError(
      f"loss became {sums['loss']} at step {step}: lower the learning rate "
      f"or check the data; the last good checkpoint is kept"
    )


def setup_data(config, workdir, ontology=None):
  """Train examples (+ teacher-labelled ones, + slot-substituted copies of
  the gold ones), ontology (built from them unless given), encoded."""
  train = input_pipeline.load_split(config.data, "train")
  substituted = []
  if config.data.augment_ratio:
    substituted = augment.augment(
      train, config.data.augment_ratio, config.seed
    )
  extra = distill.sequence_examples(config.distill, workdir, train)
  if extra:
    train = distill.mix(
      train, extra, config.distill.sequence_ratio, config.seed
    )
  train = list(train) + substituted
  if ontology is None:
    ontology = targets_lib.Ontology.build(e.parse for e in train)
  m = config.model
  enc = input_pipeline.encode(
    train,
    ontology,
    m.max_source_len,
    m.max_target_len,
    tuple(m.token_features),
  )
  return ontology, enc


def _load_teacher(config):
  """(model, params, ontology) of the token-level KD teacher, or None."""
  d = config.distill
  if not (d.teacher_workdir and d.alpha > 0):
    return None
  t_cfg, t_ont, t_params, _ = checkpoints.load_for_inference(d.teacher_workdir)
  if t_cfg.max_target_len < config.model.max_target_len:
    raise ValueError(
      f"teacher max_target_len {t_cfg.max_target_len} < student's "
      f"{config.model.max_target_len}: the teacher cannot score every step"
    )
  # Fails now, not inside the first jitted step.
  model_lib.feature_columns(config.model.token_features, t_cfg.token_features)
  logging.info(
    "teacher %s: %s", d.teacher_workdir, model_lib.summary(t_cfg, t_params)
  )
  return model_lib.make_model(t_cfg), t_params, t_ont


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint); returns the
  last eval metrics."""
  workdir = Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  if config.distributed:
    jax.distributed.initialize()
  ckpts = checkpoints.manager(workdir / "checkpoints", config.keep_checkpoints)
  ontology, words = None, ()
  if ckpts.latest_step() is not None:
    meta, _ = checkpoints.restore_meta(workdir / "checkpoints")
    ontology = targets_lib.Ontology.from_dict(meta["ontology"])
    words = tuple(meta["model"].get("words", ()))
  teacher = _load_teacher(config)
  if teacher is not None:
    if ontology is not None and ontology != teacher[2]:
      raise ValueError("the checkpoint's ontology differs from the teacher's")
    ontology = teacher[2]
  ontology, enc = setup_data(config, workdir, ontology)
  ontology.save(workdir / "ontology.json")
  model_cfg = model_lib.ModelConfig.from_config(config.model, len(ontology))
  if model_cfg.arch == "lstm":  # Word vocabulary: as saved, else from train.
    words = words or lstm_lib.build_vocab(
      enc.fingerprints, enc.lengths, model_cfg
    )
    model_cfg = model_cfg.replace(words=words)
  model = model_lib.make_model(model_cfg)
  devices = jax.local_devices()[: config.train.devices or None]
  n_dev = len(devices)
  if config.train.batch_size % (n_dev * jax.process_count()):
    raise ValueError(
      f"train.batch_size={config.train.batch_size} is not divisible by "
      f"{n_dev * jax.process_count()} devices"
    )
  batches = input_pipeline.Batches(
    enc,
    config.train.batch_size,
    config.train.buckets,
    config.seed,
    jax.process_index(),
    jax.process_count(),
  )
  rng = jax.random.key(config.seed)
  state = create_train_state(config, model_cfg, jax.random.fold_in(rng, 0))
  meta = {
    "config": config.to_dict(),
    "ontology": ontology.to_dict(),
    "model": dataclasses.asdict(model_cfg),
  }
  if ckpts.latest_step() is not None:
    state = checkpoints.restore_state(ckpts, ckpts.latest_step(), state)
    logging.info("resumed from step %d", int(state.step))
  start = int(state.step)
  best = _best_so_far(workdir)

  writer = metric_writers.create_default_writer(
    str(workdir), just_logging=jax.process_index() > 0
  )
  n = model_lib.param_count(state.params)
  logging.info("%s", model_lib.summary(model_cfg, state.params))
  logging.info(
    "%d train examples, %d steps/epoch, %d local devices",
    len(enc.lengths),
    batches.steps_per_epoch,
    n_dev,
  )
  if start == 0:
    writer.write_hparams(
      {"params": n, "int8_mb": n / 1e6, "train_examples": len(enc.lengths)}
    )
  report = periodic_actions.ReportProgress(
    num_train_steps=config.train.num_steps, writer=writer
  )

  kd = {}
  if teacher is not None:
    kd = dict(
      teacher=teacher[0],
      kd_alpha=config.distill.alpha,
      kd_temperature=config.distill.temperature,
    )
  p_step = jax.pmap(
    functools.partial(
      train_step,
      model=model,
      label_smoothing=config.train.label_smoothing,
      **kd,
    ),
    axis_name="batch",
    donate_argnums=(0,),
    devices=devices,
  )
  state = flax.jax_utils.replicate(state, devices)
  step_rng = flax.jax_utils.replicate(jax.random.fold_in(rng, 1), devices)
  teacher_params = None
  if teacher is not None:
    teacher_params = flax.jax_utils.replicate(teacher[1], devices)
  pending, acc, last_eval = None, None, {}
  step = start
  end = config.train.num_steps
  if config.train.stop_after:
    end = min(end, start + config.train.stop_after)
  with _StopFlag() as stop:
    while step < end and not stop.is_set():
      batch = _shard(batches(step), n_dev)
      state, sums = p_step(state, batch, step_rng, teacher_params)
      step += 1
      # Pull step N-1's metrics only after step N is dispatched.
      if pending is not None:
        acc = _accumulate(acc, pending[1], pending[0])
      pending = (step, sums)
      report(step)
      if step % config.log_every == 0 or step == config.train.num_steps:
        acc = _accumulate(acc, pending[1], step)
        pending = None
        writer.write_scalars(step, _summarise(acc))
        acc = None
      if step % config.checkpoint_every == 0:
        checkpoints.save(ckpts, state, meta)
      if step % config.eval_every == 0 or step == config.train.num_steps:
        with report.timed("eval"):
          last_eval = _periodic_eval(
            config, workdir, model_cfg, ontology, state, meta, best
          )
          best = max(best, last_eval["exact_match"])
        writer.write_scalars(
          step, {f"eval/{k}": v for k, v in last_eval.items()}
        )
  if pending is not None:
    _accumulate(acc, pending[1], pending[0])
  if int(ckpts.latest_step() or -1) != step:
    checkpoints.save(ckpts, state, meta)
  ckpts.wait_until_finished()
  ckpts.close()
  writer.flush()
  if step < config.train.num_steps:
    logging.warning(
      "stopped at step %d; rerun the same command to resume", step
    )
  return last_eval


def _accumulate(acc, sums, step):
  sums = jax.tree.map(lambda x: float(np.asarray(x)[0]), sums)
  _check_finite(sums, step)
  if acc is None:
    return sums
  return {k: acc[k] + v if k != "grad_norm" else v for k, v in sums.items()}


def _summarise(acc):
  tokens = max(acc["tokens"], 1.0)
  out = {
    "train/loss": acc["loss"] / tokens,
    "train/nll": acc["nll"] / tokens,
    "train/token_accuracy": acc["correct"] / tokens,
    "train/grad_norm": acc["grad_norm"],
  }
  if "kd" in acc:
    out["train/kd"] = acc["kd"] / tokens
  return out


def _best_so_far(workdir: Path) -> float:
  f = workdir / "best" / "best.json"
  return json.loads(f.read_text())["exact_match"] if f.exists() else -1.0


def _periodic_eval(config, workdir, model_cfg, ontology, state, meta, best):
  """Greedy eval on the eval split; saves to best/ when exact match rises.

  With a parameter average (train.ema_decay) the average is what is scored
  and saved to best/ (so every inference CLI uses it); the raw parameters
  are scored too, as `raw_exact_match`, to show what the average adds.
  """
  examples = input_pipeline.load_split(config.data, "eval")
  if config.max_eval_examples:
    examples = examples[: config.max_eval_examples]

  def score(params):  # Replicated params: device 0's copy is scored.
    return evaluate_lib.evaluate_examples(
      model_cfg,
      checkpoints.unreplicate(params),
      ontology,
      examples,
      batch_size=config.eval_batch_size,
      form=config.data.form,
    )["metrics"]

  t0 = time.time()
  ema = ema_params(state.opt_state)
  metrics = score(state.params if ema is None else ema)
  if ema is not None:
    metrics["raw_exact_match"] = score(state.params)["exact_match"]
    state = state.replace(params=ema)
  metrics["seconds"] = time.time() - t0
  if metrics["exact_match"] > best:
    with checkpoints.manager(workdir / "best", 1) as mgr:
      checkpoints.save(mgr, state, dict(meta, eval=metrics))
      mgr.wait_until_finished()
    step = int(np.asarray(state.step)[0])
    (workdir / "best" / "best.json").write_text(
      json.dumps(dict(metrics, step=step), indent=1)
    )
  return metrics
