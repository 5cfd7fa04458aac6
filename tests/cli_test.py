"""Every command line once end to end, its output, and its error paths."""

import json
import os
import platform
import re

import pytest

from pqrnn_jax import cli
from tests.commands import run

# Our log lines: absl's prefix, then one of this project's files.
OWN_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ ([\w/]+\.py):\d+\] ")


def _one_error_line(r, *needles):
  """The command failed with one `error: ...` line and no traceback."""
  assert r.returncode != 0
  assert "Traceback" not in r.stderr, r.stderr
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: "), r.stderr
  for n in needles:
    assert n in last, (n, last)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  d = tmp_path_factory.mktemp("cli")
  r = run("train.py", "--config=configs/tiny.py", f"--workdir={d}")
  assert r.returncode == 0, r.stderr
  return d, r


def test_train_prints_only_its_own_lines(workdir):
  _, r = workdir
  lines = r.stdout.splitlines() + r.stderr.splitlines()
  assert 0 < len(lines) <= 40, lines
  strangers = [x for x in lines if not OWN_LINE.match(x)]
  assert not strangers, strangers  # No orbax, TensorFlow or XLA chatter.
  sources = {OWN_LINE.match(x).group(1) for x in lines}
  ours = {"train.py", "training.py", "train_metrics.py", "input_pipeline.py"}
  assert sources <= ours, sources
  text = "\n".join(lines)
  assert re.search(r"step 6/6: loss [\d.]+, token accuracy [\d.]+, ", text)
  assert "ETA" in text and "eval at step 6: exact match" in text
  assert "checkpoints in" in text and "TensorBoard logs in" in text


def test_evaluate_writes_json(workdir):
  d, _ = workdir
  r = run("-m", "pqrnn_jax.evaluate", f"--workdir={d}", "--split=test")
  assert r.returncode == 0, r.stderr
  assert r.stdout.startswith("test: exact_match=")
  got = json.loads((d / "eval_test_beam1.json").read_text())
  assert 0.0 <= got["metrics"]["exact_match"] <= 1.0 and got["per_locale"]


def test_predict_with_beam(workdir):
  d, _ = workdir
  r = run("-m", "pqrnn_jax.predict", f"--workdir={d}", "--beam=2", "hi there")
  assert r.returncode == 0, r.stderr
  assert r.stdout.strip().startswith("[IN:")


def test_export_then_runner(workdir):
  d, _ = workdir
  out = d / "f.tflite"
  r = run(
    "-m",
    "pqrnn_jax.export",
    f"--workdir={d}",
    f"--out={out}",
    "--variant=float",
  )
  assert r.returncode == 0, r.stderr
  assert json.loads(r.stdout.splitlines()[0])["bytes"] == out.stat().st_size
  r = run("-m", "pqrnn_jax.tflite_runner", f"--model={out}", "wake me up")
  assert r.returncode == 0, r.stderr
  assert r.stdout.strip().startswith("[IN:")


def test_distill_labels_a_file(workdir, tmp_path):
  d, _ = workdir
  (tmp_path / "u.txt").write_text("wake me up at 7\nwhat is the weather\n")
  out = tmp_path / "t.tsv"
  r = run(
    "-m",
    "pqrnn_jax.distill",
    f"--teacher={d}",
    f"--input={tmp_path / 'u.txt'}",
    f"--out={out}",
    "--beam=2",
  )
  assert r.returncode == 0, r.stderr
  assert "wrote 2 teacher parses" in r.stdout
  assert len(out.read_text().splitlines()) == 3  # Header and two rows.


def test_error_paths_are_one_line(workdir, tmp_path):
  d, _ = workdir
  _one_error_line(
    run("-m", "pqrnn_jax.evaluate", f"--workdir={tmp_path}"), "no checkpoint"
  )
  _one_error_line(
    run("-m", "pqrnn_jax.export", f"--workdir={tmp_path}", "--out=x.tflite"),
    "no checkpoint",
  )
  _one_error_line(
    run("-m", "pqrnn_jax.tflite_runner", f"--model={tmp_path}/no.tflite", "hi"),
    "no model file",
  )
  _one_error_line(
    run(
      "-m",
      "pqrnn_jax.distill",
      f"--teacher={d}",
      f"--input={tmp_path}/none.txt",
      f"--out={tmp_path}/o.tsv",
    ),
    "no input file",
  )
  _one_error_line(
    run("train.py", "--config=configs/mtop.py:xx", f"--workdir={tmp_path}"),
    "language 'xx'",
  )
  _one_error_line(  # A misspelt override: the flag and the hint.
    run(
      "train.py",
      "--config=configs/tiny.py",
      "--config.model.pretraned=use-m3",
      f"--workdir={tmp_path}",
    ),
    "--config.model.pretraned: the config has no field 'pretraned'",
    'Did you mean "pretrained"',
  )
  r = run("-m", "pqrnn_jax.evaluate", f"--workdir={d}", "--split=dev")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  assert "split" in r.stderr  # absl names the flag and its choices.


def test_evaluate_any_file_in_top_layout(workdir, tmp_path):
  d, _ = workdir
  rows = [
    "wake me at 7\twake me at 7\t[IN:CREATE_ALARM wake me "
    "[SL:DATE_TIME at 7 ] ]",
    "remind me\tremind me\t[IN:CREATE_REMINDER remind "
    "[SL:PERSON_REMINDED ] me ]",  # An empty slot: valid TOP, scored.
  ]
  path = tmp_path / "top_test.tsv"
  path.write_text("\n".join(rows) + "\n")
  r = run(
    "-m",
    "pqrnn_jax.evaluate",
    f"--workdir={d}",
    f"--file={path}",
    "--form=full",
  )
  assert r.returncode == 0, r.stderr
  name = f"{tmp_path.name}_top_test"  # Folder and stem.
  assert r.stdout.startswith(f"{name}: exact_match=")
  got = json.loads((d / f"eval_{name}_beam1.json").read_text())
  assert got["metrics"]["count"] == 2


def test_machine_names_architecture_and_cpu_count():
  m = cli.machine()
  assert m.startswith(platform.machine())
  assert m.endswith(f", {os.cpu_count()} cpus")
