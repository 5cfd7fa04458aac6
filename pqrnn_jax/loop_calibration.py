"""Full-int8 calibration of graphs with WHILE loops (`parse_<t>`).

TFLite's calibrator crashes when it runs a WHILE op (TOOLCHAIN.md 4f),
but not when a model merely holds one. So the loop is calibrated in
pieces, each a WHILE-free signature added to the float model for the
calibration only:

  - "prefix": a copy of the parse subgraph cut before its WHILE, whose
    outputs are the loop's initial state (the encoder and the set-up);
  - "body" and "cond": the loop's own subgraphs, run as signatures.

The float interpreter drives prefix -> (cond, body)* on the calibration
utterances to collect every iteration's loop state; the calibrator then
runs the prefix and the body on those inputs and records each tensor's
range, in the body itself, in the prefix's copy (copied back to the parse
subgraph tensor by tensor), and the helper signatures are dropped before
the MLIR quantizer sees the model. Left without a range, hence float:
tensors whose range reaches a -inf mask.
"""

import copy

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from pqrnn_jax.decoder import FLOAT_SCOPE

_PREFIX = "calibration_prefix"
_BODY = "calibration_body"
_COND = "calibration_cond"


def _read(model_bytes) -> "schema.ModelT":
  return flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))


def _write(model) -> bytes:
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def signature_keys(model_bytes) -> set[str]:
  return {s.signatureKey.decode() for s in _read(model_bytes).signatureDefs}


def _builtin(model, op) -> int:
  """The operator's builtin code (schema.BuiltinOperator)."""
  code = model.operatorCodes[op.opcodeIndex]
  return max(code.builtinCode, code.deprecatedBuiltinCode)


def _while_op(model, graph):
  """(index, operator) of the graph's first WHILE op, or None."""
  for i, op in enumerate(graph.operators):
    if _builtin(model, op) == schema.BuiltinOperator.WHILE:
      return i, op
  return None


def _signature(key, index, ins, outs):
  sig = schema.SignatureDefT(signatureKey=key, subgraphIndex=index)
  tm = lambda n, t: schema.TensorMapT(name=n, tensorIndex=t)
  sig.inputs = [tm(f"x{k:03d}", t) for k, t in enumerate(ins)]
  sig.outputs = [tm(f"y{k:03d}", t) for k, t in enumerate(outs)]
  return sig


def with_loop_signatures(model_bytes) -> tuple[bytes, dict]:
  """The float model plus prefix/body/cond signatures per looping
  signature; returns (bytes, {signature key: helper keys and indices})."""
  model = _read(model_bytes)
  loops = {}
  for sig in list(model.signatureDefs):
    key = sig.signatureKey.decode()
    graph = model.subgraphs[sig.subgraphIndex]
    found = _while_op(model, graph)
    if found is None:
      continue
    at, op = found
    opts = op.builtinOptions
    prefix = copy.deepcopy(graph)
    prefix.operators = prefix.operators[:at]
    prefix.outputs = list(op.inputs)
    prefix.name = f"{_PREFIX}_{key}".encode()
    model.subgraphs.append(prefix)
    names = {p: f"{p}_{key}" for p in (_PREFIX, _BODY, _COND)}
    body = model.subgraphs[opts.bodySubgraphIndex]
    cond = model.subgraphs[opts.condSubgraphIndex]
    model.signatureDefs += [
      _signature(  # The parse signature's inputs, in its order.
        names[_PREFIX],
        len(model.subgraphs) - 1,
        [t.tensorIndex for t in sig.inputs],
        op.inputs,
      ),
      _signature(
        names[_BODY], opts.bodySubgraphIndex, body.inputs, body.outputs
      ),
      _signature(
        names[_COND], opts.condSubgraphIndex, cond.inputs, cond.outputs
      ),
    ]
    loops[key] = dict(
      names,
      graph=sig.subgraphIndex,
      prefix_graph=len(model.subgraphs) - 1,
      body_graph=opts.bodySubgraphIndex,
      inputs=[(t.name.decode(), t.tensorIndex) for t in sig.inputs],
    )
  return _write(model), loops


def loop_samples(model_bytes, loops, samples, max_iterations: int):
  """Calibration samples of the helper signatures: each looping
  signature's own samples fed to its prefix, and every loop state that
  the float model reaches from them fed to its body."""
  from ai_edge_litert.interpreter import Interpreter

  interp = Interpreter(model_content=model_bytes)
  out = []
  for key, inputs in samples:
    if key not in loops:
      continue
    loop = loops[key]
    names = {n: f"x{k:03d}" for k, (n, _) in enumerate(loop["inputs"])}
    feed = {names[n]: v for n, v in inputs.items()}
    out.append((loop[_PREFIX], feed))
    state = interp.get_signature_runner(loop[_PREFIX])(**feed)
    cond = interp.get_signature_runner(loop[_COND])
    body = interp.get_signature_runner(loop[_BODY])
    for _ in range(max_iterations):
      x = {f"x{k:03d}": state[f"y{k:03d}"] for k in range(len(state))}
      if not bool(np.asarray(cond(**x)["y000"]).reshape(-1)[0]):
        break
      out.append((loop[_BODY], x))
      state = body(**x)
  return out


def _has_range(tensor) -> bool:
  q = tensor.quantization
  return q is not None and q.min is not None and len(q.min) > 0


def _drop_unbounded(graph, limit: float = 1e30) -> None:
  """Drops ranges that reach a -inf mask (the calibrator records it as
  -3.4e38): one int8 scale over that span rounds every real value to one
  level, so those tensors stay float."""
  for t in graph.tensors:
    if (
      _has_range(t)
      and max(-min(t.quantization.min), max(t.quantization.max)) > limit
    ):
      t.quantization = None


def _untie_float_concatenations(model, graph) -> None:
  """Drops the range of each concatenation under decoder.FLOAT_SCOPE (the
  loops' symbol and pointer scores joined for the masked argmax). It
  stays float, yet the quantizer still gives its int8 inputs its one
  range, the pointer scores' wider one: the loop's symbol scores then
  rounded coarser than the host loop's (2.2x the int8 step on the tiny
  model), and near-ties between symbols flipped."""
  scope = f"/{FLOAT_SCOPE}/"
  for op in graph.operators:
    if _builtin(model, op) != schema.BuiltinOperator.CONCATENATION:
      continue
    out = graph.tensors[op.outputs[0]]
    if scope in (out.name or b"").decode():
      out.quantization = None


def _table_ranges(model) -> None:
  """Gives every lookup in a constant table (GATHER, GATHER_ND) the
  table's own range. The quantizer scales a table by its lookup's
  calibrated range, which differs a little in each subgraph that holds
  the lookup (each bucket's loop body): each then stored its own int8
  copy of the table (the position embedding, 16 KB). With one range the
  copies are identical and the converter stores one; every row of the
  table, not only the rows calibration reached, keeps its value. (The
  symbol embedding's range is that of the select it feeds: one range
  per tensor over the bodies, `_shared_body_ranges`, makes it one.)"""
  ops = {schema.BuiltinOperator.GATHER, schema.BuiltinOperator.GATHER_ND}
  for graph in model.subgraphs:
    for op in graph.operators:
      if _builtin(model, op) not in ops:
        continue
      table, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
      data = model.buffers[table.buffer].data
      if table.type != schema.TensorType.FLOAT32 or data is None:
        continue
      if len(data) and _has_range(out):
        values = np.frombuffer(bytes(data), np.float32)
        out.quantization.min = [float(values.min())]
        out.quantization.max = [float(values.max())]


def _shared_body_ranges(model, loops) -> None:
  """One range per tensor over the loop bodies of every bucket of one
  kind (`parse`, `beam4`): the union of their calibrated ranges. The
  bodies differ only in the source length, and with per-body ranges
  each stored its own int8 copy of the tables it reads (the symbol
  embedding: 50 KB per body); with one range the copies are identical
  and the converter stores one."""
  kinds = {}
  for key, loop in loops.items():
    kinds.setdefault(key.rsplit("_", 1)[0], []).append(loop["body_graph"])
  for bodies in kinds.values():
    graphs = [model.subgraphs[i] for i in bodies]
    ops = [[op.opcodeIndex for op in g.operators] for g in graphs]
    if any(o != ops[0] for o in ops):
      continue  # Not the same body (never seen): leave its ranges.
    # Matched by position among the inputs and the ops' outputs: the
    # tensor tables themselves may differ (a constant folded in one).
    slots = [
      list(g.inputs) + [t for op in g.operators for t in op.outputs]
      for g in graphs
    ]
    for same in zip(*slots, strict=True):
      tensors = [g.tensors[t] for g, t in zip(graphs, same, strict=True)]
      if not all(_has_range(t) for t in tensors):
        continue
      lo = min(min(t.quantization.min) for t in tensors)
      hi = max(max(t.quantization.max) for t in tensors)
      for t in tensors:
        t.quantization.min, t.quantization.max = [lo], [hi]


def _step_ranges_from_loop(model, loops, tol: float = 2e-3) -> None:
  """`decode_step` takes the greedy loop body's range for each tensor
  whose range it nearly shares (op type alike, both ends within `tol` of
  the span), and `decode_step_k<K>` the `beam<K>_<t>` body's. Both are
  calibrated on the same states (calibration.py: the greedy parse's, the
  beam search's hypotheses), the step's in JAX, the loop's in TFLite's
  float interpreter: float noise leaves their ranges ~1e-4 apart, enough
  to round a few values to another int8 level and flip a near-tie between
  the one-call parse and the host loop of one file. The step's other
  tensors keep their own ranges. Graph inputs count (the decoder state,
  which int8 matmuls read)."""
  steps = {
    s.signatureKey.decode(): s.subgraphIndex for s in model.signatureDefs
  }
  for key, graph in steps.items():
    if key == "decode_step":
      kind = "parse_"
    elif key.startswith("decode_step_k"):
      kind = f"beam{key.rsplit('_k', 1)[1]}_"
    else:
      continue
    bodies = [v["body_graph"] for k, v in loops.items() if k.startswith(kind)]
    if bodies:  # One range over the bodies (_shared_body_ranges).
      _take_near_ranges(model.subgraphs[graph], model.subgraphs[bodies[0]], tol)


def _take_near_ranges(step, body, tol: float) -> None:
  """Each ranged tensor of `step` takes the range of the first tensor of
  `body` made by the same op type (-1: a graph input) whose range is
  within `tol` of its span at both ends."""

  def ranged(g):  # (op code, tensor); -1 for the graph's inputs.
    found = [(-1, t) for t in g.inputs]
    found += [(op.opcodeIndex, t) for op in g.operators for t in op.outputs]
    return [(c, g.tensors[t]) for c, t in found if _has_range(g.tensors[t])]

  body = ranged(body)
  for code, t in ranged(step):
    lo, hi = min(t.quantization.min), max(t.quantization.max)
    near = tol * (hi - lo)
    for c, b in body:
      q = b.quantization
      off = max(abs(min(q.min) - lo), abs(max(q.max) - hi))
      if c == code and off <= near:
        t.quantization.min, t.quantization.max = list(q.min), list(q.max)
        break


def without_loop_signatures(calibrated_bytes, loops) -> bytes:
  """Copies the prefix copies' ranges onto their parse subgraphs, sets
  table lookups' ranges (_table_ranges), one range per loop-body tensor
  (_shared_body_ranges) and the step's from the loop's
  (_step_ranges_from_loop), then drops the helper signatures and
  subgraphs."""
  model = _read(calibrated_bytes)
  _table_ranges(model)
  _shared_body_ranges(model, loops)
  _step_ranges_from_loop(model, loops)
  helpers = set()
  for loop in loops.values():
    _drop_unbounded(model.subgraphs[loop["body_graph"]])
    _untie_float_concatenations(model, model.subgraphs[loop["body_graph"]])
    graph = model.subgraphs[loop["graph"]]
    prefix = model.subgraphs[loop["prefix_graph"]]
    for t, p in zip(graph.tensors, prefix.tensors, strict=True):
      if _has_range(p) and not _has_range(t):
        t.quantization = p.quantization
    helpers |= {loop[_PREFIX], loop[_BODY], loop[_COND]}
  drop = {loop["prefix_graph"] for loop in loops.values()}
  model.signatureDefs = [
    s for s in model.signatureDefs if s.signatureKey.decode() not in helpers
  ]
  model.subgraphs = [g for i, g in enumerate(model.subgraphs) if i not in drop]
  return _write(model)
