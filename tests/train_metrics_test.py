"""The progress line's ETA: steady rate, evaluations and compiles left."""

import logging

import pytest

from pqrnn_jax import train_metrics


def test_eta_counts_steps_evals_and_compiles_left():
  p = train_metrics.Progress(0, 1000, eval_every=300, shapes=4)
  p.compiled(10.0)  # 3 shapes left, 10 s each.
  p.evaluated(5.0)
  # 900 steps at 10 steps/s; evals at 300, 600, 900 and the last step.
  assert p.eta(100, 10.0) == pytest.approx(90.0 + 4 * 5.0 + 3 * 10.0)


def test_rate_leaves_out_compile_and_eval_time(caplog, monkeypatch):
  now = [0.0]
  monkeypatch.setattr(train_metrics.time, "time", lambda: now[0])
  p = train_metrics.Progress(0, 100, eval_every=50, shapes=1)
  p.compiled(4.0)
  p.evaluated(2.0)
  now[0] = 16.0  # 10 steps in 16 s, of which 6 s compiling and evaluating.
  scalars = {"train/loss": 1.0, "train/token_accuracy": 0.5}
  with caplog.at_level(logging.INFO):
    p.log(10, scalars)
  line = caplog.records[-1].getMessage()
  # 1 step/s; ETA 90 s of steps + 2 evals (50, 100) x 2 s.
  assert "1.00 steps/s" in line and "ETA 1m34s" in line
