"""Golden values: what a token becomes, pinned as literals.

Every checkpoint and .tflite depends on these numbers. A deliberate change
of the hash or the projection updates them together with
projection.FORMAT_VERSION, so that old files are refused clearly.
"""

import numpy as np
import pytest

from pqrnn_jax import projection

TOKENS = ["wake", "Café", "7:30", "สวัสดี", "नमस्ते", "🙂", ""]
FINGERPRINTS = [
  0x68A81087,
  0x241C0F08,
  0x0DB2B58F,
  0x536F4061,
  0xD36DF3F3,
  0x3E226063,
  0x0,
]
# "Marta" with token features shape and suffix3: word, "shape\x1fXx",
# "suffix3\x1frta".
MARTA = [0xD5E47C67, 0xA7B5D7F2, 0x0DA07A52]
# project(fingerprints, 16) of TOKENS.
FEATURES_16 = [
  [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],
  [0, -1, -1, 1, -1, 1, 0, 0, 1, 1, 1, 0, 0, 0, -1, 0],
  [-1, 1, 0, 1, 0, 0, 0, -1, 0, -1, -1, 1, 1, 0, -1, 1],
  [-1, 0, 1, 0, 0, -1, 0, 0, 0, 1, 1, 0, 0, 1, -1, 0],
  [-1, 1, 0, -1, -1, 0, 0, 0, -1, 0, 0, -1, 0, 0, 0, -1],
  [0, -1, 0, 0, 0, -1, -1, 1, 0, -1, -1, 0, 0, 1, -1, 1],
  [-1, 0, 0, 0, 0, 0, -1, 0, -1, -1, 0, 0, -1, 0, 1, -1],
]


def test_fingerprints_are_pinned():
  got = projection.fingerprint(TOKENS)
  assert [int(x) for x in got] == FINGERPRINTS


def test_token_feature_hashes_are_pinned():
  got = projection.fingerprint(["Marta"], ("shape", "suffix3"))
  assert [int(x) for x in got[0]] == MARTA


def test_projected_features_are_pinned_in_jax_and_numpy():
  fps = np.asarray(FINGERPRINTS, np.uint32)[None]
  want = np.asarray(FEATURES_16, np.float32)
  np.testing.assert_array_equal(projection.project_np(fps, 16)[0], want)
  np.testing.assert_array_equal(
    np.asarray(projection.project(fps, 16))[0], want
  )


def test_other_format_versions_are_refused():
  projection.check_format(None, "old file")  # Written before versions: 1.
  projection.check_format(projection.FORMAT_VERSION, "file")
  with pytest.raises(projection.FormatError, match="projection format 999"):
    projection.check_format(999, "model.tflite")
