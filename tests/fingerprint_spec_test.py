"""The host side of a parse against tests/golden/fingerprints.json: this
package's tokenizer, fingerprints and bucket choice, and the portable C
port under ports/c, compiled with the system's `cc`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pqrnn_jax import projection
from pqrnn_jax.data import tokenizer
from pqrnn_jax.tflite_runner import TFLiteParser

REPO = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((REPO / "tests/golden/fingerprints.json").read_text())
CASES = GOLDEN["cases"]
PORT = REPO / "ports/c/pqrnn_fingerprint.c"


def _ids(case):
  return case["utterance"][:24]


def _hex(rows):
  return [[f"{int(x):08x}" for x in row] for row in rows]


def test_golden_file_is_this_format():
  assert GOLDEN["projection_format"] == projection.FORMAT_VERSION
  for v in GOLDEN["murmur3_x86_32_seed0"]:
    assert f"{projection._murmur(v['utf8']):08x}" == v["hash"], v


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_tokens_fingerprints_and_bucket(case):
  if case["needs_icu"] and not tokenizer.thai_segmentation():
    pytest.skip("PyICU (extra `thai`) is not installed")
  tokens = tokenizer.tokenize(case["utterance"], locale=case["locale"])
  assert tokens == case["tokens"]
  fps, lengths, _ = projection.featurize(
    [tokens], GOLDEN["max_len"], GOLDEN["features"]
  )
  n = case["length"]
  assert int(lengths[0]) == n
  assert _hex(fps[0, :n]) == case["fingerprints"]
  assert not fps[0, n:].any()  # Zero past the length.


def test_runner_picks_the_golden_bucket():
  runner = TFLiteParser.__new__(TFLiteParser)  # bucket() reads two fields.
  runner.buckets, runner.t_max = GOLDEN["buckets"], GOLDEN["max_len"]
  for case in CASES:
    assert runner.bucket(len(case["tokens"])) == case["bucket"], case


def test_word_column_is_the_plain_fingerprint():
  for case in CASES:
    words = projection.fingerprint(case["tokens"][: case["length"]])
    assert [f"{int(x):08x}" for x in words] == [
      row[0] for row in case["fingerprints"]
    ]


@pytest.fixture(scope="module")
def c_port(tmp_path_factory):
  cc = shutil.which("cc")
  if cc is None:
    pytest.skip("no C compiler (`cc`) on this machine")
  exe = tmp_path_factory.mktemp("port") / "pqrnn_fingerprint"
  cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
  cmd += ["-DPQRNN_FINGERPRINT_MAIN", "-o", str(exe), str(PORT)]
  subprocess.run(cmd, check=True, capture_output=True, text=True)
  return exe


def _run_port(exe, lines):
  buckets = ",".join(str(b) for b in GOLDEN["buckets"])
  args = [str(exe), "--features", ",".join(GOLDEN["features"])]
  args += ["--buckets", buckets, "--max-len", str(GOLDEN["max_len"])]
  r = subprocess.run(
    args, input="".join(lines), capture_output=True, text=True, check=True
  )
  return r.stdout.splitlines()


def test_c_port_matches_the_golden_file(c_port):
  lines = ["\t".join(c["tokens"]) + "\n" for c in CASES]
  for case, out in zip(CASES, _run_port(c_port, lines), strict=True):
    length, bucket, *tokens = out.split(" ")
    assert (int(length), int(bucket)) == (case["length"], case["bucket"])
    assert [t.split(",") for t in tokens] == case["fingerprints"], case


def _tables_or_skip() -> str:
  """The C tables' text; skips unless they are of this Python's Unicode
  (3.12 has Unicode 15, where 93 code points gain a case or digit
  property; the golden cases avoid them)."""
  import unicodedata

  header = (REPO / "ports/c/unicode_tables.h").read_text()
  if f"Unicode {unicodedata.unidata_version})" not in header:
    pytest.skip(
      f"the C tables are of another Unicode than Python {sys.version}"
    )
  return header


def test_c_port_on_every_folding_and_class(c_port):
  """Every code point the tables name, as a token of its own and inside
  a word, against this package's fingerprints."""
  table = _tables_or_skip()
  cps = sorted({int(h, 16) for h in _table_entries(table)} - {0})
  tokens = [chr(c) for c in cps] + [f"Ab{chr(c)}9" for c in cps]
  want = projection.fingerprint(tokens, GOLDEN["features"])
  lines = [t + "\n" for t in tokens]
  got = [out.split(" ")[2].split(",") for out in _run_port(c_port, lines)]
  bad = [t for t, g, w in zip(tokens, got, _hex(want), strict=True) if g != w]
  assert not bad, f"{len(bad)} tokens differ, e.g. {bad[:5]!r}"


def _table_entries(text):
  import re

  return re.findall(r"0x([0-9A-F]+)", text.split("FOLD[]", 1)[1])


def test_tables_are_those_the_script_writes(tmp_path):
  """unicode_tables.h is regenerated from this Python's str methods."""
  header = _tables_or_skip()
  out = tmp_path / "make_tables.py"
  out.write_text((REPO / "ports/c/make_tables.py").read_text())
  subprocess.run([sys.executable, str(out)], check=True, capture_output=True)
  assert (tmp_path / "unicode_tables.h").read_text().split("\n", 2)[2] == (
    header.split("\n", 2)[2]
  )


def test_c_murmur_tails(c_port):
  """Every tail length of MurmurHash3 (the vectors are lower case, so
  the word hash is the plain hash)."""
  vectors = [v for v in GOLDEN["murmur3_x86_32_seed0"] if " " not in v["utf8"]]
  vectors = [v for v in vectors if v["utf8"]]
  outs = _run_port(c_port, [v["utf8"] + "\n" for v in vectors])
  for v, out in zip(vectors, outs, strict=True):
    assert out.split(" ")[2].split(",")[0] == v["hash"], v
