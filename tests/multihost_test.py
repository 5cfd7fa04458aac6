"""Multi-host training, actually run: two CPU processes on localhost (gloo
collectives), each feeding its own half of the global batch, end where one
process with two devices and the same global batch ends."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import chex
import orbax.checkpoint as ocp

REPO = Path(__file__).resolve().parents[1]
COMMON = [
  "train.py",
  "--config=configs/tiny.py",
  "--config.train.num_steps=4",
  "--config.eval_every=4",
  "--config.checkpoint_every=4",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)  # Same XLA as one process.
  return env


def _params(workdir):
  d = Path(workdir, "checkpoints").absolute()
  with ocp.CheckpointManager(d) as mgr:
    step = mgr.latest_step()
    r = mgr.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
    )
  return step, r["state"]["params"]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
  port = _free_port()
  procs = [
    subprocess.Popen(
      [sys.executable]
      + COMMON
      + [
        f"--workdir={tmp_path / 'multi'}",
        "--config.distributed=True",
        f"--config.coordinator_address=localhost:{port}",
        "--config.num_processes=2",
        f"--config.process_id={i}",
      ],
      cwd=REPO,
      env=_env(1),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  assert all("process 0 of 2" in logs[0] and "of 2" in x for x in logs)
  one = subprocess.run(
    [sys.executable] + COMMON + [f"--workdir={tmp_path / 'one'}"],
    cwd=REPO,
    env=_env(2),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert one.returncode == 0, one.stderr
  s_multi, p_multi = _params(tmp_path / "multi")
  s_one, p_one = _params(tmp_path / "one")
  assert s_multi == s_one == 4
  chex.assert_trees_all_close(p_multi, p_one, atol=1e-6, rtol=0)
