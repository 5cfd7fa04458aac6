"""Global test settings: set before jax is imported anywhere."""

import os

# Four fake CPU devices so that data-parallel code is tested without a pod.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
# Tiny models compile faster than they run: skip most XLA passes.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache per pytest run, made by the first
# process (xdist's workers inherit its environment): the suite compiles
# the same tiny train steps and decoders in many files, and after each
# module's jax.clear_caches. Removed when the run ends.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile

  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(
    prefix="pqrnn_jax_test_cache_"
  )
  os.environ["PQRNN_TEST_CACHE_OWNER"] = str(os.getpid())
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

import pytest  # noqa: E402


def pytest_unconfigure(config):
  """The run's compilation cache goes with the process that made it."""
  if os.environ.get("PQRNN_TEST_CACHE_OWNER") == str(os.getpid()):
    import shutil

    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


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
