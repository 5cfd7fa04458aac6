"""What the training loop logs: per-step sums -> per-token means through
clu.metrics, and one progress line per `log_every` steps."""

import logging
import time

import numpy as np
from clu import metrics as clu_metrics


def _per_token(name: str):
  """A clu Average of sum `name` over the batch's target tokens."""

  class PerToken(clu_metrics.Average):
    @classmethod
    def from_model_output(cls, **sums):
      return cls(total=sums[name], count=sums["tokens"])

  return PerToken


def collection(kd: bool, rdrop: bool = False):
  """The clu Collection of logged train metrics (with the KD or R-Drop
  term per token when the loss has one)."""
  fields = {
    "loss": _per_token("loss"),
    "nll": _per_token("nll"),
    "token_accuracy": _per_token("correct"),
    "grad_norm": clu_metrics.LastValue.from_output("grad_norm"),
  }
  if kd:
    fields["kd"] = _per_token("kd")
  if rdrop:
    fields["rdrop"] = _per_token("rdrop")
  return clu_metrics.Collection.create(**fields)


def host_sums(sums, step: int) -> dict:
  """Device 0's copy of the step's sums, as numpy; raises on a NaN loss."""
  sums = {k: np.asarray(v)[0].astype(np.float64) for k, v in sums.items()}
  if not np.isfinite(sums["loss"]):
    raise FloatingPointError(
      f"loss became {sums['loss']} at step {step}: lower the learning rate "
      f"or check the data; the last good checkpoint is kept"
    )
  return sums


class Progress:
  """One log line per `log_every` steps: loss, accuracy, steady steps/s and
  an ETA of the whole run: the steps left at the steady rate (time spent
  compiling or evaluating is not counted in it), plus the evaluations left
  at the last one's cost, plus the step shapes not compiled yet at the
  mean compile time so far."""

  def __init__(self, step: int, total: int, eval_every: int, shapes: int):
    self.step, self.total, self.t = step, total, time.time()
    self.eval_every, self.shapes_left = eval_every, shapes
    self.paused = 0.0  # Seconds since the last line not spent stepping.
    self.last_eval, self.compiles = 0.0, []

  def evaluated(self, seconds: float) -> None:
    self.paused += seconds
    self.last_eval = seconds

  def compiled(self, seconds: float) -> None:
    """A step that compiled a new shape took `seconds`."""
    self.paused += seconds
    self.compiles.append(seconds)
    self.shapes_left = max(self.shapes_left - 1, 0)

  def eta(self, step: int, rate: float) -> float:
    evals = self.total // self.eval_every - step // self.eval_every
    evals += self.total % self.eval_every > 0
    compile_s = np.mean(self.compiles) if self.compiles else 0.0
    steps_s = (self.total - step) / rate if rate else 0.0
    return steps_s + evals * self.last_eval + self.shapes_left * compile_s

  def log(self, step: int, scalars: dict) -> None:
    now = time.time()
    busy = max(now - self.t - self.paused, 1e-9)
    rate = (step - self.step) / busy
    eta = self.eta(step, rate)
    self.step, self.t, self.paused = step, now, 0.0
    logging.info(
      "step %d/%d: loss %.4f, token accuracy %.4f, %.2f steps/s, ETA %s",
      step,
      self.total,
      scalars["train/loss"],
      scalars["train/token_accuracy"],
      rate,
      _duration(eta),
    )


def _duration(seconds: float) -> str:
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def add(acc, metrics_cls, step: int, sums):
  """acc (a metrics_cls or None) merged with step `step`'s device sums."""
  m = metrics_cls.single_from_model_output(**host_sums(sums, step))
  return m if acc is None else acc.merge(m)


def scalars(acc) -> dict:
  return {f"train/{k}": float(v) for k, v in acc.compute().items()}
