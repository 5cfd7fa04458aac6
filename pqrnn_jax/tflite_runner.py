"""Reference on-device driver of an exported model: numpy + ai_edge_litert.

  python -m pqrnn_jax.tflite_runner --model model.tflite "wake me at 7 am"

What an app does, in Python: tokens -> uint32 fingerprints (passed as int32
with the same bits) -> `encode` -> greedy loop over `decode_step`, masking
the scores with the tree constraints of decode.py (the same numpy functions
that the jitted decoders run) -> action ids -> parse string. No JAX
computation runs here; decode.py and projection.py are used for their numpy
functions only. The contract is in README.md, "On-device (TFLite)".
"""

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import projection
from pqrnn_jax import targets as targets_lib

METADATA_NAME = "pqrnn_manifest"  # Same as export.METADATA_NAME.


def read_manifest(model_path) -> dict:
  """The model's manifest: the JSON beside it, else its TFLite metadata."""
  side = Path(model_path).with_suffix(".json")
  if side.exists():
    return json.loads(side.read_text())
  from ai_edge_litert import schema_py_generated as schema

  m = schema.Model.GetRootAs(Path(model_path).read_bytes(), 0)
  for i in range(m.MetadataLength()):
    if m.Metadata(i).Name() == METADATA_NAME.encode():
      data = m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy()
      return json.loads(data.tobytes())
  raise ValueError(f"{model_path}: no {side.name} and no manifest metadata")


class TFLiteParser:
  """Greedy constrained decoding with the `encode`/`decode_step` signatures.

  Attributes:
    ontology: targets.Ontology shipped with the model.
    manifest: the model's manifest dict.
  """

  def __init__(self, model_path, num_threads: int = 1, manifest=None):
    self.manifest = manifest or read_manifest(model_path)
    m = self.manifest
    projection.check_format(m.get("projection_format"), model_path)
    self.interpreter = Interpreter(
      model_path=str(model_path), num_threads=num_threads
    )
    self._encode = self.interpreter.get_signature_runner("encode")
    self._step = self.interpreter.get_signature_runner("decode_step")
    self.ontology = targets_lib.Ontology.from_dict(m["ontology"])
    self.kinds_V = np.asarray(m["kinds"], np.int32)
    self.t_max, self.u_max = m["max_source_len"], m["max_target_len"]
    self.token_features = tuple(m.get("token_features", ()))
    self.form = m["form"]
    sig = m["signatures"]
    self._cache_names = [n for n, _, _ in sig["encode"]["outputs"]]
    # Decoder state: what decode_step both takes and gives back (running
    # sums, or an LSTM's c and h), zeros before the first step.
    step_out = {n for n, _, _ in sig["decode_step"]["outputs"]}
    self._sums = {
      n: np.zeros(shape, np.float32)
      for n, shape, _ in sig["decode_step"]["inputs"]
      if n in step_out
    }

  def fingerprints(self, tokens):
    """int32 [1, T_max] (or [1, T_max, 1 + K] with token features)
    fingerprints (uint32 bits) and length [1]."""
    fps, length, _ = projection.featurize(
      [list(tokens)], self.t_max, self.token_features
    )
    return fps.view(np.int32), length

  def decode(self, fps_1xT, length_1, constrained: bool = True):
    """Greedy action ids [<= U_max] int32, ending with EOS if it came."""
    cache = self._encode(fingerprints=fps_1xT, length=length_1)
    cache = {k: cache[k] for k in self._cache_names}
    sums = dict(self._sums)
    src_mask_1xT = np.arange(self.t_max)[None, :] < length_1[:, None]
    state = decode_lib.init_state(1, np)
    vocab = len(self.ontology)
    prev, actions = targets_lib.EOS_ID, []  # BOS is the EOS id.
    for t in range(self.u_max):
      out = self._step(
        prev_action=np.array([prev], np.int32),
        step=np.array([t], np.int32),
        length=length_1,
        **cache,
        **sums,
      )
      sums = {k: out[k] for k in sums}
      scores = np.concatenate(
        [out["symbol_scores"], out["pointer_scores"]], axis=-1
      )
      if constrained:
        ok = decode_lib.allowed_mask(
          state, self.kinds_V, src_mask_1xT, t, self.u_max, self.form, np
        )
      else:  # Still never PAD, never a pointer past the input.
        is_pad = np.arange(vocab) == targets_lib.PAD_ID
        ok = np.concatenate([~is_pad[None], src_mask_1xT], axis=-1)
      prev = int(np.argmax(np.where(ok, scores, -np.inf)[0]))
      actions.append(prev)
      if prev == targets_lib.EOS_ID:
        break
      state = decode_lib.transition(
        state, np.array([prev]), self.kinds_V, vocab, np
      )
    return np.asarray(actions, np.int32)

  def parse_tokens(self, tokens, constrained: bool = True) -> str:
    """Parse string of one token list (slot words copied from `tokens`)."""
    fps, length = self.fingerprints(tokens)
    actions = self.decode(fps, length, constrained)
    return targets_lib.actions_to_parse(actions, list(tokens), self.ontology)


def main(argv):
  from absl import flags

  from pqrnn_jax.data import tokenizer

  f = flags.FLAGS
  utterances = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  if not Path(f.model).exists():
    raise FileNotFoundError(f"no model file {f.model}")
  parser = TFLiteParser(f.model, num_threads=f.threads)
  for u in utterances:
    print(parser.parse_tokens(tokenizer.tokenize(u, locale=f.locale)))


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string("model", None, "Exported .tflite file.", required=True)
  flags.DEFINE_integer("threads", 1, "Interpreter threads.")
  flags.DEFINE_string("locale", "", "Locale hint for the tokenizer.")
  cli.run(main)
