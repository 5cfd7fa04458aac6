"""Damaged checkpoints: resume falls back to the newest one that restores;
inference names the bad path in one line."""

from pathlib import Path

import chex
import orbax.checkpoint as ocp
import pytest

from configs import tiny
from pqrnn_jax import checkpoints, training
from tests.commands import run


def _config(steps):
  cfg = tiny.get_config()
  cfg.train.num_steps, cfg.checkpoint_every, cfg.eval_every = steps, 3, 100
  cfg.keep_checkpoints = 3
  return cfg


def _params(workdir):
  d = Path(workdir, "checkpoints").absolute()
  step = max(ocp.utils.checkpoint_steps(d))
  with ocp.CheckpointManager(d) as mgr:
    r = mgr.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
    )
  return step, r["state"]["params"]


def _damage_data(step_dir: Path):
  """Overwrites every array data file of a checkpoint with garbage."""
  files = list((step_dir / "state").rglob("d/*"))
  assert files, f"no data files under {step_dir}"
  for f in files:
    f.write_bytes(b"\x00garbage" * 4)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  training.train_and_evaluate(_config(9), workdir)
  return _params(workdir)


def test_resume_skips_a_damaged_checkpoint(tmp_path, straight, caplog):
  training.train_and_evaluate(_config(6), tmp_path)  # Checkpoints 3 and 6.
  _damage_data(tmp_path / "checkpoints" / "6")
  with caplog.at_level("WARNING"):
    training.train_and_evaluate(_config(9), tmp_path)
  warned = [r.getMessage() for r in caplog.records if "unreadable" in r.message]
  assert len(warned) == 1 and "checkpoints/6" in warned[0], warned
  assert (tmp_path / "checkpoints" / "unreadable-6").is_dir()
  # Resumed from step 3: batches and rngs are functions of the step, so the
  # run ends where an uninterrupted one does.
  step, params = _params(tmp_path)
  assert step == straight[0] == 9
  chex.assert_trees_all_equal(params, straight[1])


def test_damaged_metadata_is_skipped_too(tmp_path, caplog):
  training.train_and_evaluate(_config(6), tmp_path)
  (tmp_path / "checkpoints" / "6" / "meta" / "metadata").write_text("")
  with caplog.at_level("WARNING"):
    training.train_and_evaluate(_config(9), tmp_path)
  assert any("checkpoints/6" in r.message for r in caplog.records)
  assert _params(tmp_path)[0] == 9


def test_no_readable_checkpoint_is_one_clear_error(tmp_path):
  training.train_and_evaluate(_config(3), tmp_path)
  _damage_data(tmp_path / "checkpoints" / "3")
  with pytest.raises(checkpoints.CheckpointError, match="restores: 3"):
    training.train_and_evaluate(_config(6), tmp_path)


def test_inference_on_a_damaged_checkpoint_names_it(tmp_path):
  training.train_and_evaluate(_config(3), tmp_path)
  best = tmp_path / "best" / "3"
  (best / "state" / "_METADATA").write_text("")
  with pytest.raises(checkpoints.CheckpointError, match=str(best)):
    checkpoints.load_for_inference(tmp_path)
  r = run("-m", "pqrnn_jax.predict", f"--workdir={tmp_path}", "wake me up")
  assert r.returncode == 1
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: cannot read checkpoint") and str(best) in last
  assert "Traceback" not in r.stderr


def test_a_checkpoint_of_another_projection_format_is_refused(tmp_path):
  import json

  from pqrnn_jax import projection

  training.train_and_evaluate(_config(3), tmp_path)
  for d in ("checkpoints", "best"):
    f = tmp_path / d / "3" / "meta" / "metadata"
    meta = json.loads(f.read_text())
    assert meta["projection_format"] == projection.FORMAT_VERSION
    f.write_text(json.dumps(dict(meta, projection_format=999)))
  with pytest.raises(projection.FormatError, match="projection format 999"):
    checkpoints.load_for_inference(tmp_path)
  with pytest.raises(projection.FormatError, match="projection format 999"):
    training.train_and_evaluate(_config(6), tmp_path)
