"""int8 calibration data: the step sees what the host loop feeds it."""

import numpy as np

from pqrnn_jax import calibration, decode, models, targets
from pqrnn_jax.tflite_signatures import encode_name
from tests.export_test import tiny_trained


def test_step_samples_are_the_greedy_parse_from_padded_encodings():
  model_cfg, params, ontology, enc = tiny_trained()
  kinds = decode.kinds_array(ontology)
  samples = calibration.calibration_samples(model_cfg, params, enc, kinds, 8)
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
