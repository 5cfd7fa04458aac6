"""Running the project's commands as a user would, for the tests."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args, stdin=None, timeout=600):
  """`python ARGS` in the repository on CPU with one device: the result."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop("PQRNN_TRACEBACK", None)
  return subprocess.run(
    [sys.executable, *args],
    cwd=REPO,
    env=env,
    input=stdin,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
