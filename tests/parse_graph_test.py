"""`parse_<t>`: the whole greedy parse in one call of the .tflite file,
against the host loop over `decode_step` on the same file."""

import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import (
  calibration,
  decode,
  export,
  inference,
  input_pipeline,
  tflite_runner,
)
from tests.export_test import export_each, tiny_trained

# int8 parse_<t> against the host loop on the same file, tiny model: all
# 80 measured (0.75 with decode_step calibrated on gold steps, not on the
# states the loop visits; a loop calibrated wrongly agrees on ~0).
AGREE_INT8 = 0.95
# beam4_<t> against the host beam: all 80 measured, with decode_step_k4
# calibrated on the beam's own hypotheses (66 % on greedy states in fours).
AGREE_INT8_BEAM = 0.95


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  trained = tiny_trained()
  model_cfg, params, ontology, enc = trained
  out = tmp_path_factory.mktemp("parse")
  # Both signature sets, so that one file's loop and host loop compare;
  # no beam signatures (the tests below add them where they test them).
  runs = export_each(
    trained, out, ("float", "dynamic"), signatures="all", beam=0
  )
  data = tiny.get_config().data
  tokens = [e.tokens for e in input_pipeline.load_split(data, "test")]
  tokens += [e.tokens for e in input_pipeline.load_split(data, "train")]
  return model_cfg, params, ontology, enc, runs, tokens


def _both(path, tokens):
  """(one-call actions, host-loop actions) of every token list."""
  p = tflite_runner.TFLiteParser(path)
  pairs = []
  for t in tokens:
    fps, length = p.fingerprints(t)
    pairs.append((p.graph_decode(fps, length), p.host_decode(fps, length)))
  return p, pairs


def test_one_parse_signature_per_bucket_builtin_ops(files):
  model_cfg, *_, runs, _ = files
  for r in runs.values():
    ops = r["ops"]
    export.check_builtin_only(ops)
    p = tflite_runner.TFLiteParser(r["path"])
    assert p.parse_buckets == p.buckets == [12, model_cfg.max_source_len]
    assert ops["WHILE"] == len(p.parse_buckets)
    assert {"IF", "STABLEHLO_CASE"}.isdisjoint(ops)
    sig = p.interpreter.get_signature_runner("parse_12")
    outs = sig.get_output_details()
    assert list(outs["actions"]["shape"]) == [1, model_cfg.max_target_len]


def test_float_parse_equals_host_loop(files):
  *_, runs, tokens = files
  p, pairs = _both(runs["float"]["path"], tokens)
  assert len(pairs) > 60
  for got, want in pairs:
    np.testing.assert_array_equal(got, want)
  # decode() takes the one-call path, the runner's parses are unchanged.
  graph = [p.parse_tokens(t) for t in tokens[:16]]
  host = tflite_runner.TFLiteParser(runs["float"]["path"], host_loop=True)
  assert graph == [host.parse_tokens(t) for t in tokens[:16]]


def test_dynamic_parse_agrees_with_its_host_loop(files):
  """Same weights, same ops; the loop decodes at the bucket's length and
  the host loop at T_max, so activation ranges (hence int8 rounding) may
  differ: near-ties can flip. Measured on the tiny model: 100 %."""
  *_, runs, tokens = files
  _, pairs = _both(runs["dynamic"]["path"], tokens)
  agree = np.mean([np.array_equal(g, w) for g, w in pairs])
  assert agree >= 0.95, agree


def test_default_dynamic_file_parses_and_beams_in_one_call(files, tmp_path):
  model_cfg, params, ontology, *_, tokens = files
  r = export.export(
    model_cfg, params, ontology, tmp_path / "d.tflite", variant="dynamic"
  )
  p = tflite_runner.TFLiteParser(r["path"])
  assert set(p.manifest["signatures"]) == {
    "parse_12",
    "parse_24",
    "beam4_12",
    "beam4_24",
  }
  assert not p.has_steps and p.beam_parse == 4
  # The same parses as the host loop and host beam search over the step
  # signatures of the file that has them.
  both = tflite_runner.TFLiteParser(files[4]["dynamic"]["path"], host_loop=True)
  for beam in (1, 4):
    assert [p.parse_tokens(t, beam=beam) for t in tokens[:8]] == [
      both.parse_tokens(t, beam=beam) for t in tokens[:8]
    ]
  with pytest.raises(ValueError, match="beam search need"):
    p.parse_tokens(tokens[0], beam=2)
  with pytest.raises(ValueError, match="no decode_step"):
    tflite_runner.TFLiteParser(r["path"], host_loop=True)
  # Opting out of the beam: greedy parses only, in a smaller file.
  greedy = export.export(
    model_cfg,
    params,
    ontology,
    tmp_path / "g.tflite",
    variant="dynamic",
    beam=0,
  )
  assert greedy["bytes"] < r["bytes"]
  g = tflite_runner.TFLiteParser(greedy["path"])
  assert set(g.manifest["signatures"]) == {"parse_12", "parse_24"}


def _input_types(path, op: str, i: int = 0) -> set[str]:
  """Types of input i of every `op` (a TFLite op name), in all subgraphs."""
  from ai_edge_litert import schema_py_generated as schema
  from ai_edge_litert.tools import flatbuffer_utils

  m = flatbuffer_utils.read_model(str(path))
  names = {v: k for k, v in vars(schema.TensorType).items() if k.isupper()}
  code = getattr(schema.BuiltinOperator, op)
  return {
    names[g.tensors[o.inputs[i]].type]
    for g in m.subgraphs
    for o in g.operators
    if m.operatorCodes[o.opcodeIndex].builtinCode == code
  }


def _fc_weight_types(path) -> set[str]:
  """Types of every FULLY_CONNECTED weight, in all subgraphs."""
  return _input_types(path, "FULLY_CONNECTED", 1)


def _fc_output_scales(path, step="decode_step", parse="parse_12") -> dict:
  """{"step" | "loop": {(scale, zero point)}} of the int8 outputs of the
  FULLY_CONNECTED ops in `step` and in the loop body of `parse`."""
  from ai_edge_litert import schema_py_generated as schema
  from ai_edge_litert.tools import flatbuffer_utils

  m = flatbuffer_utils.read_model(str(path))
  sig = {s.signatureKey.decode(): s.subgraphIndex for s in m.signatureDefs}
  code = schema.BuiltinOperator.FULLY_CONNECTED
  loop = next(
    o.builtinOptions.bodySubgraphIndex
    for o in m.subgraphs[sig[parse]].operators
    if m.operatorCodes[o.opcodeIndex].builtinCode
    == schema.BuiltinOperator.WHILE
  )
  out = {}
  for key, g in (("step", sig[step]), ("loop", loop)):
    graph = m.subgraphs[g]
    out[key] = {
      (float(q.scale[0]), int(q.zeroPoint[0]))
      for o in graph.operators
      if m.operatorCodes[o.opcodeIndex].builtinCode == code
      and (q := graph.tensors[o.outputs[0]].quantization).scale is not None
    }
  return out


def _lookup_tables(path) -> dict:
  """{shape: buffers} of the constant tables that GATHER / GATHER_ND ops
  read, over all subgraphs."""
  from ai_edge_litert import schema_py_generated as schema
  from ai_edge_litert.tools import flatbuffer_utils

  m = flatbuffer_utils.read_model(str(path))
  ops = {schema.BuiltinOperator.GATHER, schema.BuiltinOperator.GATHER_ND}
  tables = {}
  for g in m.subgraphs:
    for op in g.operators:
      if m.operatorCodes[op.opcodeIndex].builtinCode in ops:
        t = g.tensors[op.inputs[0]]
        if m.buffers[t.buffer].data is not None:
          tables.setdefault(tuple(t.shape), set()).add(t.buffer)
  return tables


def test_int8_parse_agrees_with_its_host_loop(files, tmp_path):
  """The int8 loop, calibrated in pieces (loop_calibration.py): int8
  weights in every subgraph, the loop's included, and the host loop's
  parses: both are calibrated on the float model's greedy states, and the
  step takes the loop's ranges where they are the same tensor's, so their
  int8 grids are the same."""
  model_cfg, params, ontology, enc, runs, tokens = files
  kinds = decode.kinds_array(ontology)
  samples = calibration.calibration_samples(
    model_cfg, params, enc, kinds, 32, beam=4
  )
  r = export.export(
    model_cfg,
    params,
    ontology,
    tmp_path / "q.tflite",
    variant="int8",
    calibration=samples,
    signatures="all",
  )
  export.check_builtin_only(r["ops"])
  assert r["ops"]["WHILE"] == 2
  assert _fc_weight_types(r["path"]) == {"INT8"}  # The loop's too.
  _, pairs = _both(r["path"], tokens)
  agree = np.mean([np.array_equal(g, w) for g, w in pairs])
  assert agree >= AGREE_INT8, agree
  # The loop's matmuls round to the host loop's int8 grids exactly (the
  # step's ranges taken from the loop's; the scores' float concatenation
  # does not widen the symbol scores' range).
  scales = _fc_output_scales(r["path"])
  assert scales["loop"] == scales["step"], scales
  # parse_<t> alone (the encode and step samples then only feed the loop):
  # the same loop, the same ranges, the same parses.
  alone = export.export(
    model_cfg,
    params,
    ontology,
    tmp_path / "p.tflite",
    variant="int8",
    calibration=samples,
    signatures="parse",
  )
  p, q = (tflite_runner.TFLiteParser(x["path"]) for x in (r, alone))
  assert not q.has_steps
  # Each bucket's loop reads the symbol and position tables, calibrated to
  # one range (loop_calibration.py): one int8 copy of each in the file.
  tables = _lookup_tables(alone["path"])
  v, d = len(ontology), model_cfg.bottleneck
  assert (v, d) in tables and (model_cfg.max_target_len, d) in tables
  assert all(len(b) == 1 for b in tables.values()), tables
  assert [q.parse_tokens(t) for t in tokens[:16]] == [
    p.parse_tokens(t) for t in tokens[:16]
  ]
  # The beam search in one call, its scores kept float: near the host
  # beam over the same file's batched step.
  b = export.export(
    model_cfg,
    params,
    ontology,
    tmp_path / "b.tflite",
    variant="int8",
    calibration=samples,
    signatures="all",
    beam=4,
  )
  # What the host loop does in float stays float in the loops: the greedy
  # and top-k argmaxes, the beam's log-softmax (decoder.FLOAT_SCOPE).
  for op in ("ARG_MAX", "EXP", "LOG"):
    assert _input_types(b["path"], op) == {"FLOAT32"}, op
  graph = tflite_runner.TFLiteParser(b["path"])
  host = tflite_runner.TFLiteParser(b["path"], host_loop=True)
  same = [
    graph.parse_tokens(t, beam=4) == host.parse_tokens(t, beam=4)
    for t in tokens
  ]
  assert np.mean(same) >= AGREE_INT8_BEAM, np.mean(same)
  # The batched step is calibrated on the beam's own hypotheses, and
  # takes the beam loop's ranges: the same int8 grids.
  scales = _fc_output_scales(b["path"], "decode_step_k4", "beam4_12")
  assert scales["loop"] == scales["step"], scales


def test_one_call_beam_equals_jax_beam_search(files, tmp_path):
  model_cfg, params, ontology, *_, tokens = files
  r = export.export(
    model_cfg,
    params,
    ontology,
    tmp_path / "beam.tflite",
    variant="float",
    signatures="all",
    beam=4,
  )
  p = tflite_runner.TFLiteParser(r["path"])
  assert p.beam_parse == 4 and r["ops"]["WHILE"] == 2 * len(p.parse_buckets)
  assert {"beam4_12", "parse_12", "decode_step_k4"} <= set(
    p.manifest["signatures"]
  )
  want = inference.Parser(model_cfg, params, ontology, batch_size=16)
  want = want.parse_tokens(tokens, beam_size=4)
  assert [p.parse_tokens(t, beam=4) for t in tokens] == want
  # The host loop over the same file's batched step: the same parses.
  host = tflite_runner.TFLiteParser(r["path"], host_loop=True)
  assert [host.parse_tokens(t, beam=4) for t in tokens[:16]] == want[:16]
