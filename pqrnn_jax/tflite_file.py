"""What a .tflite file holds, read and written at the flatbuffer level:
its operators, the builtin-only check, the embedded manifest, and the
compact form it is written in."""

import json
from pathlib import Path

import flatbuffers
import numpy as np

METADATA_NAME = "pqrnn_manifest"
_TFLITE_FILE_ID = b"TFL3"  # The schema's file identifier.


def op_codes(tflite_bytes) -> dict[str, int]:
  """Operator name -> count over all subgraphs (custom ops as CUSTOM:x)."""
  from ai_edge_litert import schema_py_generated as schema

  m = schema.Model.GetRootAs(tflite_bytes, 0)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items()}
  codes = []
  for i in range(m.OperatorCodesLength()):
    oc = m.OperatorCodes(i)
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    name = names.get(code, str(code))
    if code == schema.BuiltinOperator.CUSTOM:
      name = f"CUSTOM:{(oc.CustomCode() or b'').decode()}"
    codes.append(name)
  counts = {}
  for g in range(m.SubgraphsLength()):
    sub = m.Subgraphs(g)
    for o in range(sub.OperatorsLength()):
      name = codes[sub.Operators(o).OpcodeIndex()]
      counts[name] = counts.get(name, 0) + 1
  return dict(sorted(counts.items()))


def check_builtin_only(ops: dict[str, int]) -> None:
  """Raises if any custom or Flex (select TF) op is present."""
  bad = [k for k in ops if k.startswith("CUSTOM") or "Flex" in k]
  if bad:
    raise ValueError(f"non-builtin ops in the model: {bad}")


def embed_metadata(tflite_bytes, manifest_dict) -> bytes:
  """Adds the manifest JSON as TFLite metadata METADATA_NAME, drops the
  tensor and subgraph names (the converter names every intermediate after
  its JAX op path, ~70 bytes each, ~10 % of the file; the signatures
  address tensors by index under their own names) and writes each numeric
  vector the subgraphs repeat once (_SharingBuilder)."""
  from ai_edge_litert import schema_py_generated as schema

  model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
  for subgraph in model.subgraphs:
    subgraph.name = None
    for tensor in subgraph.tensors:
      tensor.name = None
  buf = schema.BufferT()
  buf.data = np.frombuffer(json.dumps(manifest_dict).encode(), np.uint8)
  model.buffers.append(buf)
  meta = schema.MetadataT()
  meta.name, meta.buffer = METADATA_NAME, len(model.buffers) - 1
  model.metadata = (model.metadata or []) + [meta]
  builder = _SharingBuilder(1024)
  builder.Finish(model.Pack(builder), file_identifier=_TFLITE_FILE_ID)
  return bytes(builder.Output())


class _SharingBuilder(flatbuffers.Builder):
  """A flatbuffer builder that writes each distinct numeric vector once.

  Every subgraph (each bucket's signature, each WHILE body) has its own
  tensor table, and each table entry of a per-channel weight carries its
  own scales and int64 zero points: the same vectors 9-18 times, 7-15 %
  of a file. Later uses point at the first copy (flatbuffers allows a
  DAG). Byte vectors (buffer data, metadata) are left apart: delegates
  may key weight caches on a buffer's address.
  """

  def __init__(self, size):
    super().__init__(size)
    self._written = {}

  def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' API name)
    if x.dtype.itemsize == 1:
      return super().CreateNumpyVector(x)
    key = (x.dtype.str, x.tobytes())
    if key not in self._written:
      self._written[key] = super().CreateNumpyVector(x)
    return self._written[key]


def tensors_named(tflite_bytes, scope: str, outputs=()) -> list[str]:
  """Names of the tensors, in any subgraph, under the JAX name scope
  `scope`, plus those that any signature outputs under a name in
  `outputs`: the nodes an int8 conversion can be told to leave in float."""
  from ai_edge_litert import schema_py_generated as schema

  m = schema.Model.GetRootAs(tflite_bytes, 0)
  found = set()
  for g in range(m.SubgraphsLength()):
    sub = m.Subgraphs(g)
    names = [sub.Tensors(i).Name().decode() for i in range(sub.TensorsLength())]
    found |= {n for n in names if f"/{scope}/" in n}
    for s in range(m.SignatureDefsLength()):
      sig = m.SignatureDefs(s)
      if sig.SubgraphIndex() != g:
        continue
      for o in range(sig.OutputsLength()):
        if sig.Outputs(o).Name().decode() in outputs:
          found.add(names[sig.Outputs(o).TensorIndex()])
  return sorted(found)


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
