"""Data-parallel training under jax.pmap, with orbax resume and evaluation.

One process drives its local devices with `jax.pmap(axis_name="batch")`:
parameters are replicated, each device takes a slice of the global batch,
and gradients are summed across devices. Everything a run needs to continue
(state, resolved config, ontology) is in the checkpoint; the data order and
the dropout rngs are functions of the step, so a run killed and resumed ends
with the same parameters as one that was not interrupted.

The pieces: train_data (what to train on), train_state (parameters,
optimizer, average), train_step (loss and step; distill.py adds the KD
loss), checkpoints (orbax), inference + evaluate (periodic eval).
"""

import functools
import json
import logging
import math
import signal
import threading
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from clu import metric_writers, periodic_actions

from pqrnn_jax import (
  checkpoints,
  consistency,
  distill,
  evaluate,
  inference,
  input_pipeline,
  models,
  projection,
  train_data,
  train_metrics,
  train_state,
  train_step,
)
from pqrnn_jax import devices as devices_lib
from pqrnn_jax import targets as targets_lib


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


# -- Setup ------------------------------------------------------------------


def _saved(ckpts):
  """(ontology, model meta) of the newest readable checkpoint, or (None,
  None) for a fresh run."""
  _, meta = checkpoints.restore_newest(
    ckpts, lambda step: checkpoints.read_meta(ckpts, step)
  )
  if meta is None:
    return None, None
  projection.check_format(meta.get("projection_format"), ckpts.directory)
  return targets_lib.Ontology.from_dict(meta["ontology"]), meta["model"]


def _model_and_data(config, workdir: Path, ckpts, n_devices: int = 1):
  """(model config, ontology, train Batches, KD teacher or None): the
  ontology is the checkpoint's on resume, else a KD teacher's, else built
  from the training data; a model fits what it learns from the data (the
  LSTM's word table) once, then keeps the checkpoint's. The rest of the
  model config is the run's own (a float run resumed with model.quant=int8
  fine-tunes in int8)."""
  ontology, saved_model = _saved(ckpts)
  teacher = distill.load_teacher(config)
  if teacher is not None:
    if ontology is not None and ontology != teacher[2]:
      raise ValueError("the checkpoint's ontology differs from the teacher's")
    ontology = teacher[2]
  ontology, enc = train_data.training_data(config, workdir, ontology)
  ontology.save(workdir / "ontology.json")
  model_cfg = models.from_config(config.model, len(ontology))
  packed = _check_packing(config, model_cfg, teacher)
  batches = input_pipeline.Batches(
    enc,
    config.train.batch_size,
    config.train.buckets,
    config.seed,
    jax.process_index(),
    jax.process_count(),
    packed_vocab=len(ontology) if packed else 0,
    # Every device of every process gets the same number of rows.
    row_multiple=math.lcm(2, n_devices * jax.process_count()),
  )
  return model_cfg.fit(enc, saved_model), ontology, batches, teacher


def _check_packing(config, model_cfg, teacher) -> bool:
  """train.packing, refused (one line) for models that cannot read packed
  rows."""
  if not config.train.packing:
    return False
  archs = {model_cfg.arch} | ({teacher[0].config.arch} if teacher else set())
  if archs != {"pqrnn"}:
    raise ValueError(
      f"train.packing=True needs pQRNN-MAtt models (got {sorted(archs)}): "
      "set --config.train.packing=False"
    )
  return True


def _p_step(config, model, teacher, devices, batches):
  """The pmapped train step with the configured loss and normaliser."""
  if config.train.loss_norm not in ("data", "batch"):
    raise ValueError(
      f"train.loss_norm={config.train.loss_norm!r}: use 'data' or 'batch'"
    )
  tokens_per_batch = None
  if config.train.loss_norm == "data":
    tokens_per_batch = batches.tokens_per_batch
  loss_fn = train_step.make_loss_fn(model, config.train.label_smoothing)
  rdrop = config.train.get("rdrop", 0.0)
  if rdrop > 0:
    if teacher is not None:
      raise ValueError("train.rdrop and distillation: --config.train.rdrop=0")
    loss_fn = consistency.make_rdrop_loss_fn(
      model, config.train.label_smoothing, rdrop
    )
  if teacher is not None:
    d = config.distill
    loss_fn = distill.make_kd_loss_fn(
      model, teacher[0], config.train.label_smoothing, d.alpha, d.temperature
    )
  return jax.pmap(
    functools.partial(
      train_step.train_step,
      loss_fn=loss_fn,
      tokens_per_batch=tokens_per_batch,
    ),
    axis_name="batch",
    donate_argnums=devices_lib.donated_state(devices),
    devices=devices_lib.pmap_devices(devices),
  )


def _writers(config, workdir, model_cfg, state, batches, n_devices):
  """(TensorBoard writer, progress reporter); logs the run's summary. Log
  lines are this module's own (`_Progress`), so the writer only writes
  event files, from process 0."""
  writer = metric_writers.MultiWriter([])
  if jax.process_index() == 0:
    summary = metric_writers.SummaryWriter(str(workdir))
    writer = metric_writers.AsyncWriter(summary)
  n_train = len(batches.enc.lengths)
  logging.info("%s", models.summary(model_cfg, state.params))
  logging.info(
    "%d train examples, %d steps/epoch, %d local devices; checkpoints in %s, "
    "TensorBoard logs in %s",
    n_train,
    batches.steps_per_epoch,
    n_devices,
    workdir / "checkpoints",
    workdir,
  )
  if int(state.step) == 0:
    n = models.param_count(state.params)
    writer.write_hparams(
      {"params": n, "int8_mb": n / 1e6, "train_examples": n_train}
    )
  report = periodic_actions.ReportProgress(
    num_train_steps=config.train.num_steps, writer=writer
  )
  return writer, report


# -- Evaluation -------------------------------------------------------------


def eval_examples(config):
  """The eval split as configured (at most max_eval_examples)."""
  examples = input_pipeline.load_split(config.data, "eval")
  return examples[: config.max_eval_examples or None]


def _evaluator(config, workdir, model_cfg, ontology, meta):
  """periodic_eval(state=...) of this run; the eval split is read once."""
  return functools.partial(
    periodic_eval,
    config,
    workdir,
    model_cfg,
    ontology,
    eval_examples(config),
    meta=meta,
  )


def periodic_eval(
  config, workdir, model_cfg, ontology, examples, state, meta
) -> dict:
  """Greedy eval on the eval split; the checkpoint goes to best/, where
  orbax keeps the one of highest exact match.

  With a parameter average (train.ema_decay) the average is what is scored
  and saved to best/ (so every inference CLI uses it); at the last step the
  raw parameters are scored too, as `raw_exact_match`, to show what the
  average adds.
  """
  # Device 0's copy is scored.
  state = jax.device_put(checkpoints.unreplicate(state))

  def score(params):
    parser = inference.Parser(
      model_cfg,
      params,
      ontology,
      form=config.data.form,
      batch_size=config.eval_batch_size,
    )
    result = evaluate.evaluate_examples(parser, examples)
    return dict(result["metrics"], **evaluate.flat_locale_metrics(result))

  t0 = time.time()
  metrics = score(state.averaged().params)
  # The raw parameters only at the end: a second decode of the split at
  # every eval doubled what evaluation costs the run.
  last = int(state.step) >= config.train.num_steps
  if state.ema is not None and last:
    metrics["raw_exact_match"] = score(state.params)["exact_match"]
  metrics["seconds"] = time.time() - t0
  ranked = dict(metrics, step=int(state.step))
  with checkpoints.best_manager(workdir / "best") as mgr:
    checkpoints.save(mgr, state.averaged(), dict(meta, eval=metrics), ranked)
    mgr.wait_until_finished()
    best = mgr.best_step()
  if best == int(state.step):  # A human-readable copy of best/'s metrics.
    (workdir / "best" / "best.json").write_text(json.dumps(ranked, indent=1))
  raw = metrics.get("raw_exact_match")
  avg = metrics.get(checkpoints.AVERAGE_METRIC)
  logging.info(
    "eval at step %d: exact match %.4f%s%s, intent %.4f, slot F1 %.4f (%d "
    "examples, %.1f s)%s",
    int(state.step),
    metrics["exact_match"],
    "" if raw is None else f" (raw parameters {raw:.4f})",
    "" if avg is None else f", locale average {avg:.4f}",
    metrics["intent_accuracy"],
    metrics["slot_f1"],
    len(examples),
    metrics["seconds"],
    f"; best so far, saved to {workdir / 'best'}" if best == state.step else "",
  )
  return metrics


# -- The loop ---------------------------------------------------------------


def _initial_state(config, ckpts, model_cfg):
  """Fresh state from the seed, or the newest checkpoint that restores."""
  rng = jax.random.key(config.seed)
  state = train_state.create_train_state(
    config.train, model_cfg, jax.random.fold_in(rng, 0)
  )
  step, restored = checkpoints.restore_newest(
    ckpts, lambda step: checkpoints.restore_state(ckpts, step, state)
  )
  if restored is not None:
    state = restored
    logging.info("resumed from step %d", step)
  return state, jax.random.fold_in(rng, 1)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint); returns the
  last eval metrics."""
  # Where: the workdir, its checkpoints, the devices.
  workdir = Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  devices_lib.init_distributed(config)
  checkpoints.branch(workdir / "checkpoints", config.train.branch_from)
  ckpts = checkpoints.manager(workdir / "checkpoints", config.keep_checkpoints)
  devices = devices_lib.local_devices(config)

  # What: data, model, batches, state (fresh or resumed).
  model_cfg, ontology, batches, teacher = _model_and_data(
    config, workdir, ckpts, len(devices)
  )
  state, step_rng = _initial_state(config, ckpts, model_cfg)
  meta = checkpoints.meta(config, ontology, model_cfg)
  writer, report = _writers(
    config, workdir, model_cfg, state, batches, len(devices)
  )

  # How: the pmapped step on replicated state, until done or stopped.
  p_step = _p_step(
    config, models.make_model(model_cfg), teacher, devices, batches
  )
  frozen = None
  if teacher is not None:
    frozen = devices_lib.replicate(teacher[1], devices)
  state = devices_lib.replicate(state, devices)
  step_rng = devices_lib.replicate(step_rng, devices)
  evaluate_now = _evaluator(config, workdir, model_cfg, ontology, meta)
  state, step, last_eval = _loop(
    config,
    lambda state, step: p_step(
      state, input_pipeline.shard(batches(step), len(devices)), step_rng, frozen
    ),
    state,
    train_metrics.collection(
      teacher is not None, config.train.get("rdrop", 0.0) > 0
    ),
    (writer, report, ckpts, meta, evaluate_now),
    batches.shape,
  )

  # Done or stopped: the last state is always on disk.
  if int(ckpts.latest_step() or -1) != step:
    checkpoints.save(ckpts, state, meta)
  ckpts.wait_until_finished()
  ckpts.close()
  writer.flush()
  if step < config.train.num_steps:
    logging.warning(
      "stopped at step %d; rerun the same command to resume", step
    )
  else:
    logging.info(
      "done at step %d; best checkpoint in %s", step, workdir / "best"
    )
  return last_eval


def _loop(config, run_step, state, metrics_cls, io, shape_of):
  """Steps until num_steps, stop_after or a signal: logs, checkpoints and
  evaluates on schedule; returns (state, step, last eval metrics).
  shape_of(step): the step's batch shape (a new one compiles)."""
  writer, report, ckpts, meta, evaluate_now = io
  step = int(np.asarray(state.step)[0])
  end = config.train.num_steps
  if config.train.stop_after:
    end = min(end, step + config.train.stop_after)
  pending, acc, last_eval, compiled = None, None, {}, set()
  n_shapes = len({shape_of(i) for i in range(step, end)})
  progress = train_metrics.Progress(
    step, config.train.num_steps, config.eval_every, n_shapes
  )
  with _StopFlag() as stop:
    while step < end and not stop.is_set():
      shape = shape_of(step)
      if shape in compiled:
        state, sums = run_step(state, step)
      else:  # Timed apart, so the ETA's steady rate leaves it out.
        t0 = time.time()
        state, sums = jax.block_until_ready(run_step(state, step))
        progress.compiled(time.time() - t0)
        compiled.add(shape)
      step += 1
      # Pull step N-1's metrics only after step N is dispatched.
      if pending is not None:
        acc = train_metrics.add(acc, metrics_cls, *pending)
      pending = (step, sums)
      report(step)
      last = step == config.train.num_steps
      if step % config.log_every == 0 or last:
        acc = train_metrics.add(acc, metrics_cls, step, sums)
        logged = train_metrics.scalars(acc)
        writer.write_scalars(step, logged)
        progress.log(step, logged)
        pending, acc = None, None
      if step % config.checkpoint_every == 0:
        checkpoints.save(ckpts, state, meta)
      if step % config.eval_every == 0 or last:
        with report.timed("eval"):
          last_eval = evaluate_now(state=state)
        progress.evaluated(last_eval["seconds"])
        writer.write_scalars(
          step, {f"eval/{k}": v for k, v in last_eval.items()}
        )
  if pending is not None:  # A NaN in the last steps is still an error.
    train_metrics.host_sums(pending[1], pending[0])
  return state, step, last_eval
