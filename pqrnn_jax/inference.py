"""The inference API: load a trained model once, parse in batches.

  parser = Parser.from_workdir("runs/mtop_en")
  parser.parse(["wake me at 7 am"])        # raw utterances
  parser.parse_tokens([["wake", "me"]], beam_size=4)

Decoders are jitted once per (model, beam, constraints) and shared by every
Parser of the same model, so scoring a model repeatedly during training
compiles once. Inputs are featurized by projection.featurize, the same
path as training and the TFLite runner; longer inputs are truncated to the
model's maximum with a warning, and an empty one is refused.
"""

import functools

import jax
import numpy as np

from pqrnn_jax import decode as decode_lib
from pqrnn_jax import ensemble, models, projection
from pqrnn_jax import frames as frames_lib
from pqrnn_jax import targets as targets_lib
from pqrnn_jax.data import tokenizer


@functools.lru_cache(maxsize=8)
def _decoder(model_cfg, beam_size, length_penalty, constrained, form, members):
  """A jitted params, fps, lengths, kinds -> actions function; members > 1:
  an ensemble.Ensemble of that many stacked parameter sets (greedy)."""
  if members > 1 and beam_size > 1:
    raise ValueError(
      "beam search takes one model, not an ensemble: decode with beam 1 "
      "(teacher labels: --config.distill.teacher_beam=1)"
    )
  model = ensemble.wrap(models.make_model(model_cfg), members)
  if beam_size <= 1:
    return jax.jit(
      functools.partial(
        decode_lib.greedy_decode, model, constrained=constrained, form=form
      )
    )

  def fn(params, fps, lengths, kinds, frame=None):
    actions, _ = decode_lib.beam_search(
      model,
      params,
      fps,
      lengths,
      kinds,
      frame,
      beam_size=beam_size,
      length_penalty=length_penalty,
      constrained=constrained,
      form=form,
    )
    return actions

  return jax.jit(fn)


def _pad_rows(x, rows: int, fill):
  """x with rows appended (value `fill`) up to `rows` (a compiled shape)."""
  if len(x) == rows:
    return x
  pad = np.full((rows - len(x),) + x.shape[1:], fill, x.dtype)
  return np.concatenate([x, pad])


def source_width(longest: int, max_len: int, step: int = 8) -> int:
  """Source positions of a decoding batch: its longest input rounded up to
  a multiple of `step` (a few compiled shapes), at most the model's T_max."""
  return min(max_len, max(step, -(-longest // step) * step))


class Parser:
  """A trained model with its ontology, parsing token lists or utterances.

  Attributes:
    model_cfg: the model's config dataclass.
    ontology: targets.Ontology.
    form: "decoupled" (MTOP) or "full" (TOP): the tree rules.
    config: the training config of a loaded workdir (else None).
  """

  def __init__(
    self,
    model_cfg,
    params,
    ontology,
    *,
    form="decoupled",
    batch_size=64,
    config=None,
    members=1,
  ):
    self.model_cfg, self.params, self.ontology = model_cfg, params, ontology
    self.form, self.batch_size, self.config = form, batch_size, config
    self.members = members  # > 1: params stacked, an ensemble (greedy).
    self._kinds = decode_lib.kinds_array(ontology)

  @classmethod
  def from_workdir(cls, workdir, which: str = "best", **kw) -> "Parser":
    """The best (else latest) or the latest checkpoint of a workdir, or of
    each workdir of "a,b,c": their ensemble (ensemble.py)."""
    members = len(ensemble.workdirs(workdir))
    model_cfg, ontology, params, config = ensemble.load(workdir, which)
    kw.update(form=config.data.form, config=config, members=members)
    return cls(model_cfg, params, ontology, **kw)

  def decode_tokens(
    self,
    token_lists,
    *,
    beam_size=1,
    length_penalty=0.6,
    constrained=True,
    frames=None,
  ):
    """Action ids [N, U] int32 (EOS, then PAD), in fixed-shape batches.
    frames: one frame string per input (frames.py; "" for none): the
    parse's symbols are given, only its words are predicted."""
    c = self.model_cfg
    fps, lengths, _ = projection.featurize(
      token_lists, c.max_source_len, c.token_features
    )
    run = _decoder(
      c, beam_size, length_penalty, constrained, self.form, self.members
    )
    frame = None
    if frames is not None:
      if not constrained:
        raise ValueError("frames need constrained decoding")
      frame = frames_lib.frame_arrays(frames, self.ontology, c.max_target_len)
    # Rows sorted by length, each batch cut to its own source width: a
    # batch of short utterances encodes and attends over few positions.
    order = np.argsort(lengths, kind="stable")
    out = np.full((len(lengths), c.max_target_len), targets_lib.PAD_ID)
    for start in range(0, len(lengths), self.batch_size):
      rows = order[start : start + self.batch_size]
      t = source_width(int(lengths[rows].max()), c.max_source_len)
      f = _pad_rows(fps[rows, :t], self.batch_size, 0)
      n = _pad_rows(lengths[rows], self.batch_size, 1)  # Attention defined.
      fr = None
      if frame is not None:
        fr = tuple(_pad_rows(x[rows], self.batch_size, 0) for x in frame)
      out[rows] = np.asarray(run(self.params, f, n, self._kinds, fr))[
        : len(rows)
      ]
    return out.astype(np.int32)

  def parse_tokens(self, token_lists, **kw) -> list[str]:
    """Parse strings of token lists (slot words copied from the tokens);
    keywords as `decode_tokens`."""
    actions = self.decode_tokens(token_lists, **kw)
    return [
      targets_lib.actions_to_parse(a, list(t), self.ontology)
      for a, t in zip(actions, token_lists, strict=True)
    ]

  def parse(self, utterances, *, locale: str = "", **kw) -> list[str]:
    """Parse strings of raw utterances, tokenized as MTOP is."""
    return self.parse_tokens(
      [tokenizer.tokenize(u, locale=locale) for u in utterances], **kw
    )
