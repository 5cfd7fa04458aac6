"""Sweep: a two-point grid on the tiny config, a failed point, resume."""

import csv
import json

from configs import tiny
from pqrnn_jax import sweep
from tests.commands import run


def test_two_point_sweep_with_failure_and_resume(tmp_path, capsys):
  args = (tiny.get_config(), ["model.heads=2,3"], tmp_path)
  sweep.run_sweep(*args)
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert [r["status"] for r in rows] == ["ok", "failed"]
  ok, failed = rows
  assert int(ok["params"]) > 0 and 0 <= float(ok["exact_match"]) <= 1
  assert 0 < int(ok["int8_bytes"]) < 200_000  # The exported int8 file.
  assert "heads" in failed["error"]  # bottleneck 16 % heads 3 != 0
  assert (tmp_path / "exact_match_vs_int8_bytes.png").exists()
  assert "| model.heads |" in (tmp_path / "results.md").read_text()
  capsys.readouterr()
  sweep.run_sweep(*args)  # Resumes: the finished point is skipped.
  out = capsys.readouterr().out
  assert "model.heads=2: done before, skipped" in out
  point = json.loads(
    (tmp_path / "points" / "model.heads=2" / "result.json").read_text()
  )
  assert point["model.heads"] == 2


def test_bad_sweep_key_is_a_clear_error(tmp_path):
  import pytest

  with pytest.raises(ValueError, match="no config key model.nope"):
    sweep.run_sweep(tiny.get_config(), ["model.nope=1"], tmp_path)
  # The command line says it in one line, no traceback.
  r = run(
    "-m",
    "pqrnn_jax.sweep",
    "--config=configs/tiny.py",
    "--sweep=model.nope=1",
    f"--workdir={tmp_path}",
  )
  assert r.returncode == 1, r.stderr
  assert r.stderr.strip().splitlines()[-1] == (
    "error: --sweep 'model.nope=1': no config key model.nope"
  )
  assert "Traceback" not in r.stderr


def test_tuple_keys_sweep_as_semicolon_separated_literals():
  import pytest

  from configs import tiny

  grid = sweep.parse_sweeps(
    ['model.token_features=();("shape","suffix3")', "model.heads=1,2"],
    tiny.get_config(),
  )
  assert [g["model.token_features"] for g in grid[::2]] == [
    (),
    ("shape", "suffix3"),
  ]
  assert [g["model.heads"] for g in grid[:2]] == [1, 2]
  with pytest.raises(ValueError, match="not a Python literal"):
    sweep.parse_sweeps(["model.token_features=(shape"], tiny.get_config())
