"""Arbitrary Unicode through every user-facing parse path: a parse or one
clear error, never a traceback; a too-long input is truncated with one
warning."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs import tiny
from pqrnn_jax import export, inference, metrics, tflite_runner, training
from pqrnn_jax.data import tokenizer
from tests.commands import run

NASTY = [
  "wake\u200bme\u200dup",  # Zero-width space and joiner.
  "\u202eup me wake\u202c",  # Right-to-left override.
  "ضبط منبه الساعة ٧",  # Arabic, Eastern Arabic digit.
  "ตั้งนาฬิกาปลุก",  # Thai, no spaces.
  "🙂🙂 alarm 👩‍👩‍👧 at 7",  # Emoji and a ZWJ sequence.
  "a\x07b\x1bc\x7f",  # Control characters.
  "x" * 10_000,  # One 10k-character token.
  "word " * 2_000,  # 2k tokens, far past T_max.
]
TEXT = st.one_of(
  st.text(max_size=200),
  st.sampled_from(NASTY),
  st.lists(st.sampled_from(NASTY + ["at", "7", " "]), max_size=6).map("".join),
)


def _fuzz(n: int):
  return settings(
    max_examples=n,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
  )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  d = tmp_path_factory.mktemp("fuzz")
  training.train_and_evaluate(tiny.get_config(), d)
  parser = inference.Parser.from_workdir(d, batch_size=4)
  r = export.export_workdir(d, d / "f.tflite", "float")
  return d, parser, tflite_runner.TFLiteParser(r["path"])


def _check(parse_fn, text):
  """A valid tree, or for text with no tokens at all a clear ValueError."""
  if not tokenizer.tokenize(text):
    with pytest.raises(ValueError, match="empty"):
      parse_fn(text)
    return
  out = parse_fn(text)
  assert metrics.is_valid_tree(out), (text, out)


@_fuzz(40)
@given(text=TEXT)
def test_inference_parses_anything(trained, text):
  _, parser, _ = trained
  _check(lambda t: parser.parse([t])[0], text)


@_fuzz(25)
@given(text=TEXT)
def test_tflite_runner_parses_anything(trained, text):
  _, _, runner = trained
  _check(lambda t: runner.parse_tokens(tokenizer.tokenize(t)), text)


def test_too_long_input_is_truncated_with_one_warning(trained, caplog):
  _, parser, _ = trained
  with caplog.at_level("WARNING"):
    out = parser.parse(["word " * 2_000, "wake me up"])
  warned = [r for r in caplog.records if "truncated" in r.getMessage()]
  assert len(warned) == 1 and "1 input(s)" in warned[0].getMessage()
  assert all(metrics.is_valid_tree(p) for p in out)


def test_predict_cli_on_nasty_text(trained):
  d, _, _ = trained
  args = [a for a in NASTY if "\x00" not in a]
  r = run("-m", "pqrnn_jax.predict", f"--workdir={d}", *args)
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  assert len(lines) == len(args) and all(map(metrics.is_valid_tree, lines))
  assert "Traceback" not in r.stderr
  assert r.stderr.count("truncated") == 1
