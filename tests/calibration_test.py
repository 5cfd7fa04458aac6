"""int8 calibration data: the step sees what the host loop feeds it."""

import numpy as np
import pytest

from pqrnn_jax import calibration, decode, models, targets
from pqrnn_jax.tflite_signatures import encode_name
from tests.export_test import tiny_trained


@pytest.fixture(scope="module")
def made():
  """The tiny model, and its calibration samples with beam 4 states."""
  model_cfg, params, ontology, enc = tiny_trained()
  kinds = decode.kinds_array(ontology)
  samples = calibration.calibration_samples(
    model_cfg, params, enc, kinds, 8, beam=4
  )
  return model_cfg, params, kinds, samples


def test_step_samples_are_the_greedy_parse_from_padded_encodings(made):
  model_cfg, params, kinds, samples = made
  t_max, first = model_cfg.max_source_len, 12  # The tiny buckets: 12, T_max.
  inputs = [x for k, x in samples if k == encode_name(first)]
  steps = [x for k, x in samples if k == "decode_step"]
  fps = np.concatenate([x["fingerprints"] for x in inputs])
  lengths = np.concatenate([x["length"] for x in inputs])
  model = models.make_model(model_cfg)
  actions = np.asarray(decode.greedy_decode(model, params, fps, lengths, kinds))
  n = ((actions != targets.PAD_ID) & (actions != targets.EOS_ID)).sum(1)
  # The first bucket's steps come first: step 0 of every utterance, then
  # step 1 of those whose parse goes on, fed the greedy first action.
  assert [int(x["step"][0]) for x in steps[: len(n)]] == [0] * len(n)
  later = steps[len(n) : len(n) + int((n > 1).sum())]
  assert [int(x["step"][0]) for x in later] == [1] * len(later)
  got = [int(x["prev_action"][0]) for x in later]
  assert got == actions[n > 1, 0].tolist()
  for x in steps[: len(n)]:  # Encoded at 12 tokens, zero-padded to T_max.
    assert x["memory"].shape[1] == t_max
    assert not x["memory"][:, first:].any()
    assert x["memory"][:, : x["length"][0]].any()


def test_beam_step_samples_follow_the_beam_from_padded_encodings(made):
  model_cfg, _, _, samples = made
  greedy = [x for k, x in samples if k == "decode_step"]
  beam = [x for k, x in samples if k == "decode_step_k4"]
  assert beam and all(x["prev_action"].shape == (4,) for x in beam)
  assert all(x["sum0"].shape == (4, model_cfg.bottleneck) for x in beam)
  # Each utterance's hypotheses over its own padded encoding: the arrays
  # of its greedy steps.
  first = {id(x["memory"]) for x in greedy if x["step"][0] == 0}
  starts = [x for x in beam if x["step"][0] == 0]
  assert {id(x["memory"]) for x in starts} == first
  for x in starts:  # One hypothesis yet: BOS, no running sums.
    assert (x["prev_action"] == targets.EOS_ID).all()
    assert not x["sum0"].any()
  # After step 0 the best hypothesis is the greedy first action; the
  # others are other actions (distinct hypotheses).
  by_row = {id(x["memory"]): x for x in greedy if x["step"][0] == 1}
  seconds = [x for x in beam if x["step"][0] == 1]
  assert seconds
  for x in seconds:
    assert len(set(x["prev_action"].tolist())) == 4
    if id(x["memory"]) in by_row:
      want = by_row[id(x["memory"])]["prev_action"][0]
      assert x["prev_action"][0] == want
