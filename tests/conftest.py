"""Global test settings: set before jax is imported anywhere."""

import os
import shutil
import tempfile

# Four fake CPU devices so that data-parallel code is tested without a pod.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
# Tiny models compile faster than they run: skip most XLA passes.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One compilation cache per test run, made by the first process that reads
# this file (pytest-xdist's controller, before it starts its workers) and
# inherited by the workers and the subprocesses tests start: the files
# compile the same tiny programs again and again (over half of a file's
# time), and a fresh directory keeps each run's timing and results its own.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE = tempfile.mkdtemp(
    prefix="pqrnn_jax_test_cache_"
  )
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
else:
  _OWN_CACHE = None

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_parser(tmp_path_factory):
  """An inference.Parser of the tiny config trained 30 steps: enough for
  decoding tests that check structure, not accuracy."""
  from configs import tiny
  from pqrnn_jax import inference, training

  d = tmp_path_factory.mktemp("tiny_parser")
  cfg = tiny.get_config()
  cfg.train.num_steps = 30
  training.train_and_evaluate(cfg, d)
  return inference.Parser.from_workdir(d, batch_size=8)


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
  """Drop each module's compiled programs when it ends: one process
  compiles hundreds of tiny pmapped programs, and past a few hundred the
  XLA CPU runtime has crashed inside a train step."""
  yield
  import jax

  jax.clear_caches()


def pytest_sessionfinish(session):
  """The process that made the run's compilation cache removes it."""
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
