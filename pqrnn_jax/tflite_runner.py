"""Reference on-device driver of an exported model: numpy + ai_edge_litert.

  python -m pqrnn_jax.tflite_runner --model model.tflite "wake me at 7 am"

What an app does, in Python: tokens -> uint32 fingerprints (passed as int32
with the same bits) at the smallest length bucket that fits -> that
bucket's `encode_<t>` -> its outputs zero-padded to T_max -> a greedy (or
beam) loop over `decode_step`, masking the scores with decode.py's tree
constraints (host_constraints.py: the same rules on plain ints, tested
equal) -> action ids -> parse string. No JAX computation runs here. The
contract is in README.md, "On-device (TFLite)".
"""

import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import host_constraints, projection
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.tflite_file import read_manifest
from pqrnn_jax.tflite_signatures import (
  beam_parse_name,
  beam_step_name,
  encode_name,
  parse_name,
)


class Signature:
  """One signature of the interpreter, driven tensor by tensor.

  LiteRT's SignatureRunner resizes, re-allocates and re-sends every input
  on each call; here inputs persist between invokes (graph inputs are
  never overwritten in TFLite's arena), so a parse sets the encoder's
  outputs into `decode_step` once, and each step sends only the previous
  action, the step and the decoder state. The tensor calls are those the
  SignatureRunner itself makes.
  """

  def __init__(self, interpreter, key: str):
    runner = interpreter.get_signature_runner(key)
    self.runner = runner  # The public API, for inspection.
    self._w = runner._interpreter_wrapper
    self._g = runner._subgraph_index
    self.inputs = dict(runner._inputs)
    self.outputs = dict(runner._outputs)
    self._w.AllocateTensors(self._g)

  def set(self, name: str, value) -> None:
    self._w.SetTensor(self.inputs[name], value, self._g)

  def get(self, name: str) -> np.ndarray:
    return self._w.GetTensor(self.outputs[name], self._g)

  def invoke(self) -> None:
    self._w.Invoke(self._g)


class TFLiteParser:
  """Constrained greedy or beam decoding: `encode_<t>` at the smallest
  bucket t that fits, then `decode_step` at T_max.

  Attributes:
    ontology: targets.Ontology shipped with the model.
    manifest: the model's manifest dict.
    buckets: source lengths with their own signatures, ascending.
    parse_buckets: those with a one-call `parse_<t>` (float and dynamic
      files); greedy decoding uses it unless `host_loop`.
    beam_parse: K of the file's one-call beam searches `beam<K>_<t>` (one
      per parse bucket; 0: none); beam search of that size uses them.
    beam_step: K of the file's `decode_step_k<K>` (0: none); beam search
      of that size makes one step call per step, not K.
  """

  def __init__(
    self, model_path, num_threads: int = 1, manifest=None, host_loop=False
  ):
    self.manifest = manifest or read_manifest(model_path)
    m = self.manifest
    projection.check_format(m.get("projection_format"), model_path)
    self.interpreter = Interpreter(
      model_path=str(model_path), num_threads=num_threads
    )
    self.ontology = targets_lib.Ontology.from_dict(m["ontology"])
    self.t_max, self.u_max = m["max_source_len"], m["max_target_len"]
    self.token_features = tuple(m.get("token_features", ()))
    self.form = m["form"]
    # Files without buckets have one "encode" (at T_max).
    self.buckets = list(m.get("buckets") or [self.t_max])
    self.parse_buckets = [] if host_loop else m.get("parse_buckets", [])
    # Beam size with its own batched step (`decode_step_k<K>`), 0: none.
    self.beam_step = m.get("beam_step", 0)
    self.beam_parse = 0 if host_loop else m.get("beam_parse", 0)
    self._encode_names = {
      t: encode_name(t) if "buckets" in m else "encode" for t in self.buckets
    }
    self._sigs = {}
    self.has_steps = "decode_step" in m["signatures"]
    if host_loop and not self.has_steps:
      raise ValueError(f"{model_path} has no decode_step for a host loop")
    self._padded, self._zeros = (
      self._step_buffers(m) if self.has_steps else ({}, {})
    )
    self.constraints = host_constraints.Constraints(
      m["kinds"], self.form, self.u_max
    )
    self._vocab = len(self.ontology)
    self._no_pad = self.constraints.rows[-1].copy()  # Unconstrained.
    self._no_pad[targets_lib.PAD_ID] = -np.inf
    self._ids = np.zeros((2,), np.int32)

  def _step_buffers(self, m):
    """(encoder outputs padded to T_max: the step's inputs, zeros past t;
    decoder state: what decode_step both takes and gives back, running
    sums or an LSTM's c and h, zeros before the first step)."""
    step_sig = m["signatures"]["decode_step"]
    enc_sig = m["signatures"][self._encode_names[self.t_max]]
    enc_out = {n for n, _, _ in enc_sig["outputs"]}
    step_out = {n for n, _, _ in step_sig["outputs"]}
    zeros = {n: np.zeros(sh, np.float32) for n, sh, _ in step_sig["inputs"]}
    padded = {n: z for n, z in zeros.items() if n in enc_out}
    return padded, {n: z for n, z in zeros.items() if n in step_out}

  def __del__(self):
    # Each Signature holds the interpreter's C++ wrapper. Drop them first:
    # then the wrapper dies with the interpreter, before the delegates that
    # LiteRT's Interpreter.__del__ frees next (a wrapper outliving its
    # XNNPACK delegate crashes the process when it is freed).
    self._sigs = {}

  def bucket(self, n: int) -> int:
    """The smallest bucket length >= n tokens."""
    return next((t for t in self.buckets if t >= n), self.t_max)

  def signatures(self, t: int) -> tuple[Signature, Signature]:
    """(encode of bucket t, decode_step), made on first use."""
    if not self.has_steps:
      raise ValueError(
        "this file holds parse_<t> only: the host loop and beam search need "
        "encode_<t> and decode_step (export with --signatures steps or all)"
      )
    if "step" not in self._sigs:
      self._sigs["step"] = Signature(self.interpreter, "decode_step")
    if t not in self._sigs:
      self._sigs[t] = Signature(self.interpreter, self._encode_names[t])
    return self._sigs[t], self._sigs["step"]

  def _beam_signature(self, batched: bool):
    """`decode_step_k<K>` when `batched`, made on first use; else None."""
    if not batched:
      return None
    if "beam" not in self._sigs:
      name = beam_step_name(self.beam_step)
      self._sigs["beam"] = Signature(self.interpreter, name)
    return self._sigs["beam"]

  def fingerprints(self, tokens, t: int | None = None):
    """int32 [1, t] (or [1, t, 1 + K] with token features) fingerprints
    (uint32 bits) and length [1]; t defaults to the bucket that fits."""
    t = t or self.bucket(min(len(tokens), self.t_max))
    fps, length, _ = projection.featurize(
      [list(tokens)], t, self.token_features
    )
    return fps.view(np.int32), length

  def _start(self, fps_1xT, length_1, step=None):
    """Runs encode and loads its outputs, zero-padded to T_max, into
    decode_step (or the given step signature) once: the step signature,
    ready for its first step."""
    t = fps_1xT.shape[1]
    enc, decode_step = self.signatures(t)
    step = step or decode_step
    enc.set("fingerprints", fps_1xT)
    enc.set("length", length_1)
    enc.invoke()
    for name, buf in self._padded.items():  # Zeros past t on the length
      x = enc.get(name)  # axis: 1, or 2 and 3 for pQRNN-MAtt's k and v.
      buf[...] = 0.0
      buf[tuple(slice(0, n) for n in x.shape)] = x
      step.set(name, buf)
    step.set("length", length_1)
    return step

  def _run_step(self, step, prev: int, t: int, state: dict):
    """One decode_step from decoder `state`: (symbol scores [V], pointer
    scores [T], next state)."""
    ids = self._ids
    ids[0], ids[1] = prev, t
    step.set("prev_action", ids[:1])
    step.set("step", ids[1:])
    for name, value in state.items():
      step.set(name, value)
    step.invoke()
    nxt = {name: step.get(name) for name in state}
    return step.get("symbol_scores")[0], step.get("pointer_scores")[0], nxt

  def _mask(self, tree, t: int, n: int, constrained: bool):
    """(additive symbol mask [V], pointers allowed) for step t."""
    if not constrained:
      return self._no_pad, True
    code, ptr = self.constraints.allowed(tree, t, n > 0)
    return self.constraints.rows[code], ptr

  def parse_signature(self, t: int, beam: int = 1) -> Signature:
    """The one-call parse at bucket t: `parse_<t>`, or `beam<K>_<t>`."""
    if (beam, t) not in self._sigs:
      name = parse_name(t) if beam == 1 else beam_parse_name(beam, t)
      self._sigs[beam, t] = Signature(self.interpreter, name)
    return self._sigs[beam, t]

  def graph_decode(self, fps_1xT, length_1, beam: int = 1):
    """Constrained greedy (or beam, `beam_parse`) action ids from one
    `parse_<t>` (`beam<K>_<t>`) call: the loop runs in the file
    (parse_graph.py), same result form as `decode`."""
    sig = self.parse_signature(fps_1xT.shape[1], beam)
    sig.set("fingerprints", fps_1xT)
    sig.set("length", length_1)
    sig.invoke()
    n = int(sig.get("num_actions")[0])
    return sig.get("actions")[0, :n].copy()

  def decode(self, fps_1xT, length_1, constrained: bool = True):
    """Greedy action ids [<= U_max] int32, ending with EOS if it came:
    one `parse_<t>` call where the file has it, else the host loop over
    `decode_step`."""
    if constrained and fps_1xT.shape[1] in self.parse_buckets:
      return self.graph_decode(fps_1xT, length_1)
    return self.host_decode(fps_1xT, length_1, constrained)

  def host_decode(self, fps_1xT, length_1, constrained: bool = True):
    """Greedy action ids from the host loop over `decode_step`."""
    step = self._start(fps_1xT, length_1)
    n = int(length_1[0])
    state, tree = dict(self._zeros), host_constraints.HostState()
    prev, actions = targets_lib.EOS_ID, []  # BOS is the EOS id.
    for t in range(self.u_max):
      sym, ptr, state = self._run_step(step, prev, t, state)
      row, ptr_ok = self._mask(tree, t, n, constrained)
      sym = sym + row
      prev = int(np.argmax(sym))
      if ptr_ok and n:
        p = int(np.argmax(ptr[:n]))
        if ptr[p] > sym[prev]:  # A tie goes to the symbol (argmax order).
          prev = self._vocab + p
      actions.append(prev)
      if prev == targets_lib.EOS_ID:
        break
      tree = self.constraints.transition(tree, prev)
      if constrained and tree.closed:  # Only EOS may follow: no step for it.
        actions.append(targets_lib.EOS_ID)
        break
    return np.asarray(actions, np.int32)

  def _log_probs(self, sym, ptr, n, row, ptr_ok):
    """Masked log-probs [V + n] of one step, normalized over every action
    before masking (decode._step_log_probs: never PAD, no pointer past n)."""
    scores = np.concatenate([sym + self._no_pad, ptr[:n]])
    top = scores.max()
    logp = scores - (top + np.log(np.exp(scores - top).sum()))
    ptr_mask = np.full(n, 0.0 if ptr_ok else -np.inf, np.float32)
    return logp + np.concatenate([row, ptr_mask])

  def _expand(self, step, live, t: int, n: int, constrained: bool):
    """One decode_step per live hypothesis (log-prob, actions, tree,
    decoder state): [(totals [V + n], actions, tree, next state)]."""
    out = []
    for logp, acts, tree, state in live:
      prev = acts[-1] if acts else targets_lib.EOS_ID  # BOS is EOS.
      sym, ptr, nxt = self._run_step(step, prev, t, state)
      mask = self._mask(tree, t, n, constrained)
      out.append((logp + self._log_probs(sym, ptr, n, *mask), acts, tree, nxt))
    return out

  def _expand_batched(self, step, live, t: int, n: int, constrained: bool):
    """As `_expand`, with every live hypothesis in one row of a single
    `decode_step_k<K>` call (rows past the live ones idle)."""
    k, eos = self.beam_step, targets_lib.EOS_ID
    prev = np.full((k,), eos, np.int32)
    prev[: len(live)] = [h[1][-1] if h[1] else eos for h in live]
    step.set("prev_action", prev)
    step.set("step", np.array([t], np.int32))
    for name, zero in self._zeros.items():
      rows = np.zeros((k, *zero.shape[1:]), np.float32)
      rows[: len(live)] = np.concatenate([h[3][name] for h in live])
      step.set(name, rows)
    step.invoke()
    sym, ptr = step.get("symbol_scores"), step.get("pointer_scores")
    nxt = {name: step.get(name) for name in self._zeros}
    out = []
    for i, (logp, acts, tree, _) in enumerate(live):
      mask = self._mask(tree, t, n, constrained)
      state = {name: v[i : i + 1] for name, v in nxt.items()}
      logp = logp + self._log_probs(sym[i], ptr[i], n, *mask)
      out.append((logp, acts, tree, state))
    return out

  def _grow(self, cands, beam: int):
    """The `beam` best extensions other than EOS, as live hypotheses (ties
    to the earlier beam and action, as lax.top_k)."""
    width = len(cands[0][0])
    flat = np.concatenate([c[0] for c in cands])
    flat[targets_lib.EOS_ID :: width] = -np.inf
    live = []
    for i in np.argsort(-flat, kind="stable")[:beam]:
      if not np.isfinite(flat[i]):
        break
      _, acts, tree, nxt = cands[i // width]
      a = int(i % width)
      tree = self.constraints.transition(tree, a)
      live.append((float(flat[i]), acts + [a], tree, nxt))
    return live

  def beam_decode(
    self, fps_1xT, length_1, beam=4, *, length_penalty=0.6, constrained=True
  ):
    """decode.beam_search on device: K live hypotheses, one decode_step
    call each per step; those ending in EOS (scored by log-prob over the
    GNMT length penalty) compete for the best finished one. Stops once no
    live hypothesis can beat it (log-probs only fall; the penalty is
    largest at U_max): the full search's best, ending in EOS.
    A file with `decode_step_k<beam>` runs each step's K calls as one."""
    batched = beam == self.beam_step
    expand = self._expand_batched if batched else self._expand
    step = self._start(fps_1xT, length_1, self._beam_signature(batched))
    n, eos = int(length_1[0]), targets_lib.EOS_ID
    pen = lambda length: decode_lib.gnmt_penalty(length, length_penalty)
    live = [(0.0, [], host_constraints.HostState(), dict(self._zeros))]
    best = (-np.inf, None)  # (score, actions); earlier ones win ties.
    for t in range(self.u_max):
      cands = expand(step, live, t, n, constrained)
      for logp, acts, *_ in cands:  # Ending in EOS at step t.
        if (score := logp[eos] / pen(t + 1)) > best[0]:
          best = (score, acts + [eos])
      live = self._grow(cands, beam)
      bound = max((h[0] for h in live), default=-np.inf) / pen(self.u_max)
      if not live or bound <= best[0]:
        break
    if best[1] is not None:
      return np.asarray(best[1], np.int32)
    return np.asarray(live[0][1] if live else [eos], np.int32)

  def parse_tokens(self, tokens, constrained=True, beam: int = 1) -> str:
    """Parse string of one token list (slot words copied from `tokens`);
    beam > 1: one `beam<K>_<t>` call where the file has it for this beam
    and bucket, else `beam_decode`."""
    fps, length = self.fingerprints(tokens)
    in_graph = constrained and fps.shape[1] in self.parse_buckets
    if beam > 1 and in_graph and beam == self.beam_parse:
      actions = self.graph_decode(fps, length, beam)
    elif beam > 1:
      actions = self.beam_decode(fps, length, beam, constrained=constrained)
    else:
      actions = self.decode(fps, length, constrained)
    return targets_lib.actions_to_parse(actions, list(tokens), self.ontology)


def main(argv):
  from absl import flags

  from pqrnn_jax.data import tokenizer

  f = flags.FLAGS
  utterances = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  if not Path(f.model).exists():
    raise FileNotFoundError(f"no model file {f.model}")
  parser = TFLiteParser(f.model, num_threads=f.threads, host_loop=f.host_loop)
  for u in utterances:
    tokens = tokenizer.tokenize(u, locale=f.locale)
    print(parser.parse_tokens(tokens, beam=f.beam))


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string("model", None, "Exported .tflite file.", required=True)
  flags.DEFINE_integer("threads", 1, "Interpreter threads.")
  flags.DEFINE_string("locale", "", "Locale hint for the tokenizer.")
  flags.DEFINE_integer("beam", 1, "Beam size (1: greedy).", lower_bound=1)
  flags.DEFINE_bool(
    "host_loop",
    False,
    "Decode through decode_step (greedy and beam), not parse_<t> or "
    "beam<K>_<t>.",
  )
  cli.run(main)
