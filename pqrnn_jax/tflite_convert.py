"""The TFLite converter on an exported SavedModel, in a subprocess:
full-int8 calibration segfaults when it runs a WHILE op (loops are
calibrated in pieces instead, loop_calibration.py), and any such crash
must be an error, not a dead parent."""

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

from pqrnn_jax.decoder import FLOAT_SCOPE
from pqrnn_jax.tflite_file import tensors_named


def convert_saved_model(
  export_dir, variant, calibration_path, out_path, keys, float_ops="", state=""
):
  """TFLite converter on a SavedModel (meant to run in a subprocess);
  keys: the signature names, comma-separated. Identical constants of the
  buckets' subgraphs are stored once (the converter deduplicates buffers).
  int8: what convert() does (calibrate, MLIR quantizer, dedup) with the
  denylists of its quantization debugger: the decoder state (`state`,
  output names), the ops under decoder.FLOAT_SCOPE and every ARG_MAX stay
  float, as do `float_ops` (TFLite op names); both comma-separated."""
  import tensorflow as tf

  conv = tf.lite.TFLiteConverter.from_saved_model(
    str(export_dir), signature_keys=keys.split(",")
  )
  if variant != "float":
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
  if variant != "int8":
    return Path(out_path).write_bytes(conv.convert())
  from tensorflow.lite.python import convert

  samples = pickle.loads(Path(calibration_path).read_bytes())
  conv.representative_dataset = lambda: iter(samples)
  conv._experimental_calibrate_only = True
  with _loop_calibration(samples):
    calibrated = conv.convert()
  nodes = tensors_named(calibrated, FLOAT_SCOPE, state.split(","))
  # The loops' argmaxes compare scores in float, as the host loop does; an
  # argmax lowers to a reduce whose op keeps no name scope to list.
  model = convert.mlir_quantize(
    calibrated,
    denylisted_ops=["ARG_MAX"] + [x for x in float_ops.split(",") if x],
    denylisted_nodes=nodes,
  )
  Path(out_path).write_bytes(convert.deduplicate_readonly_buffers(model))


@contextlib.contextmanager
def _loop_calibration(samples):
  """While converting, the converter's calibrator calibrates WHILE loops
  in pieces (loop_calibration.py); `parse_<t>` and `beam<K>_<t>` are fed
  the samples of `encode_<t>`. The converter makes its float model and
  its calibrator in one call, with no hook between them, hence the
  patch."""
  from tensorflow.lite.python import lite

  from pqrnn_jax import loop_calibration  # In the converter's process only.

  real = lite._calibrator.Calibrator
  by_len = {}  # encode_<t> samples by t: parse_<t> and beam<K>_<t> take them.
  for key, inputs in samples:
    if key.startswith("encode_"):
      by_len.setdefault(key.rsplit("_", 1)[1], []).append(inputs)

  class Calibrator:
    def __init__(self, model, *args, **kwargs):
      self.model, self.loops = loop_calibration.with_loop_signatures(model)
      # encode_<t> samples may be here only to feed parse_<t>.
      self.fed = loop_calibration.signature_keys(model) - set(self.loops)
      self.real = real(self.model, *args, **kwargs)

    def calibrate(self, dataset_gen):
      base = [s for s in dataset_gen() if s[0] in self.fed]
      feed = [
        (key, x) for key in self.loops for x in by_len[key.rsplit("_", 1)[1]]
      ]
      loops = loop_calibration.loop_samples(
        self.model, self.loops, feed, max_iterations=1000
      )
      out = self.real.calibrate(lambda: iter(base + loops))
      return loop_calibration.without_loop_signatures(out, self.loops)

  lite._calibrator.Calibrator = Calibrator
  try:
    yield
  finally:
    lite._calibrator.Calibrator = real


def convert_in_subprocess(
  export_dir, variant, samples, out_path, keys, float_ops=(), state=()
):
  calib = Path(export_dir).with_suffix(".calibration.pkl")
  calib.write_bytes(pickle.dumps(samples or []))
  code = (
    "import sys; from pqrnn_jax import tflite_convert as t; "
    "t.convert_saved_model(*sys.argv[1:])"
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-c", code, str(export_dir), variant, str(calib)]
  r = subprocess.run(
    cmd + [str(out_path), ",".join(keys), ",".join(float_ops), ",".join(state)],
    capture_output=True,
    text=True,
    env=env,
  )
  if r.returncode != 0:
    how = f"signal {-r.returncode}" if r.returncode < 0 else r.returncode
    if r.returncode == -9:  # SIGKILL: nearly always the kernel's OOM killer.
      how += (
        ", killed by the system, most likely out of memory (an int8 file "
        "with every signature and --beam_step outgrew 24 GB of RAM: "
        "export fewer signatures, e.g. --signatures steps)"
      )
    raise RuntimeError(
      f"TFLite conversion ({variant}) failed with {how}:\n{r.stderr[-3000:]}"
    )
