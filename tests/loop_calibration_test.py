"""Calibrated ranges that loop_calibration.py sets before the quantizer:
table lookups take their table's range, and the loop bodies of one kind
(every bucket's) share one range per tensor."""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from pqrnn_jax import loop_calibration


def _tensor(shape, buffer=0, lo=None, hi=None):
  t = schema.TensorT()
  t.shape, t.type, t.buffer = list(shape), schema.TensorType.FLOAT32, buffer
  if lo is not None:
    t.quantization = schema.QuantizationParametersT()
    t.quantization.min, t.quantization.max = [lo], [hi]
  return t


def _body(lo, hi, extra=False):
  """table (buffer 1) -> GATHER -> looked-up rows -> ADD -> sum; with
  `extra`, an unused tensor first (as a constant folded in one bucket's
  body only), so that tensor indices differ between bodies."""
  g = schema.SubGraphT()
  g.tensors = [
    _tensor((4, 2), buffer=1),
    _tensor((1,)),
    _tensor((1, 2), lo=lo, hi=hi),
    _tensor((1, 2), lo=2 * lo, hi=2 * hi),
  ]
  i = 1 if extra else 0
  g.tensors = [_tensor((3,))] * i + g.tensors
  gather, add = schema.OperatorT(), schema.OperatorT()
  gather.opcodeIndex, gather.inputs, gather.outputs = 0, [i, i + 1], [i + 2]
  add.opcodeIndex, add.inputs, add.outputs = 1, [i + 2, i + 2], [i + 3]
  g.operators, g.inputs, g.outputs = [gather, add], [i + 1], [i + 3]
  return g


def _model(ranges):
  m = schema.ModelT()
  codes = []
  for op in (schema.BuiltinOperator.GATHER, schema.BuiltinOperator.ADD):
    c = schema.OperatorCodeT()
    c.builtinCode = c.deprecatedBuiltinCode = op
    codes.append(c)
  m.operatorCodes = codes
  table = np.array([[-3, 1], [0.5, 2], [7, -1], [0, 0]], np.float32)
  empty, data = schema.BufferT(), schema.BufferT()
  data.data = np.frombuffer(table.tobytes(), np.uint8)
  m.buffers = [empty, data]
  m.subgraphs = [_body(*r, extra=k == 1) for k, r in enumerate(ranges)]
  return m


def _ranges(graph):
  return [
    None if t.quantization is None else (t.quantization.min, t.quantization.max)
    for t in graph.tensors
  ]


def test_lookups_take_the_table_range():
  m = _model([(-1.0, 2.0)])
  loop_calibration._table_ranges(m)
  assert _ranges(m.subgraphs[0])[2] == ([-3.0], [7.0])
  assert _ranges(m.subgraphs[0])[3] == ([-2.0], [4.0])  # Not a lookup.


def test_bodies_of_one_kind_share_the_union_of_their_ranges():
  m = _model([(-1.0, 2.0), (-0.5, 3.0), (-9.0, 9.0)])
  loops = {
    "parse_12": {"body_graph": 0},
    "parse_24": {"body_graph": 1},
    "beam4_12": {"body_graph": 2},
  }
  loop_calibration._shared_body_ranges(m, loops)
  for g in m.subgraphs[:2]:
    assert _ranges(g)[-2:] == [([-1.0], [3.0]), ([-2.0], [6.0])]
  # Another kind of loop keeps its own ranges; tensors without a range
  # (the table, the ids) stay without.
  assert _ranges(m.subgraphs[2]) == [None, None, ([-9.0], [9.0])] + [
    ([-18.0], [18.0])
  ]


def test_the_step_takes_the_greedy_loop_range_it_nearly_shares():
  # Subgraph 0: parse_12's body; 1: decode_step, its GATHER output's range
  # 1e-4 of the span off the body's, its ADD output's 0.5 off.
  m = _model([(-1.0, 2.0), (-1.0003, 2.0002)])
  m.subgraphs[1].tensors[-1].quantization.min = [-2.5]
  sig = schema.SignatureDefT()
  sig.signatureKey, sig.subgraphIndex = b"decode_step", 1
  m.signatureDefs = [sig]
  loop_calibration._step_ranges_from_loop(m, {"parse_12": {"body_graph": 0}})
  gathered, added = _ranges(m.subgraphs[1])[-2:]
  assert gathered == ([-1.0], [2.0])  # The body's, exactly.
  assert added == ([-2.5], [4.0004])  # Its own.
  assert _ranges(m.subgraphs[0])[2:] == [([-1.0], [2.0]), ([-2.0], [4.0])]
