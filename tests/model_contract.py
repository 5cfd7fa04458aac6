"""Checks every decoder architecture must pass (pQRNN-MAtt and LSTM)."""

import functools

import jax
import numpy as np

from pqrnn_jax import models


def assert_decode_step_reproduces_decode(cfg, fps, lengths, inputs, seed=1):
  """t calls of decode_step give decode's teacher-forced scores (1e-5)."""
  params = {"params": models.init_params(cfg, jax.random.key(seed))}
  m = models.make_model(cfg)
  memory, mask = m.apply(params, fps, lengths, method=m.encode)
  full = m.apply(params, memory, mask, inputs, method=m.decode)
  cache = m.apply(params, memory, mask, method=m.init_cache)
  step = jax.jit(functools.partial(m.apply, method=m.decode_step))
  for t in range(cfg.max_target_len):
    scores, cache = step(params, cache, memory, mask, inputs[:, t])
    np.testing.assert_allclose(scores, full[:, t], atol=1e-5, rtol=1e-5)
  assert int(cache["step"]) == cfg.max_target_len


def assert_padding_is_ignored(cfg, fps, lengths, inputs, seed=5):
  """Garbage after row 1's length (4) changes nothing; its memory is 0."""
  params = {"params": models.init_params(cfg, jax.random.key(seed))}
  m = models.make_model(cfg)
  noisy = fps.at[1, 4:].set(12345)
  a = m.apply(params, fps, lengths, inputs)
  b = m.apply(params, noisy, lengths, inputs)
  np.testing.assert_allclose(a, b, atol=1e-6)
  memory, _ = m.apply(params, fps, lengths, method=m.encode)
  assert np.all(np.asarray(memory)[1, 4:] == 0)
