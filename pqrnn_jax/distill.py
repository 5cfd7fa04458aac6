"""Distillation: pQRNN-MAtt as the student of a larger teacher.

Two kinds, combinable:
  token level:    loss = (1 - alpha) * CE(gold) + alpha * T^2 *
                  KL(teacher_T || student_T) over the action distribution
                  (ontology symbols + pointers) at temperature T; the frozen
                  teacher runs inside the same jitted train step.
  sequence level: the student also trains on parses produced by a teacher:
                  a teacher workdir labels utterances by beam search (cached
                  to a file), or a user file of `utterance<TAB>parse` lines
                  made offline (e.g. by a T5 model) is read as it is.

A teacher is any workdir this project can load
(`checkpoints.load_for_inference`),
e.g. a wider pQRNN-MAtt. Teacher and student share the teacher's ontology, so
their action spaces are the same.

  python -m pqrnn_jax.distill --teacher DIR --input utterances.txt \
      --out teacher_parses.tsv [--beam 4]
"""

import logging
import random
from pathlib import Path

import jax
import jax.numpy as jnp

from pqrnn_jax.data import readers, tokenizer
from pqrnn_jax.data.example import DataError, Example

HEADER = "id\tutterance\ttokens\tparse"


def kd_loss_sums(student_BxUxA, teacher_BxUxA, weights_BxU, temperature):
  """Sum over weighted steps of T^2 KL(teacher_T || student_T).

  Actions impossible for either model (-inf score) carry no teacher mass
  and are left out of the sum, so -inf never meets a zero weight.
  """
  t = jnp.float32(temperature)
  valid = jnp.isfinite(student_BxUxA) & jnp.isfinite(teacher_BxUxA)
  s = jnp.where(valid, student_BxUxA.astype(jnp.float32), -1e9) / t
  q = jnp.where(valid, teacher_BxUxA.astype(jnp.float32), -1e9) / t
  log_ps, log_pt = jax.nn.log_softmax(s, -1), jax.nn.log_softmax(q, -1)
  kl = jnp.where(valid, jnp.exp(log_pt) * (log_pt - log_ps), 0.0).sum(-1)
  return (t * t * kl * weights_BxU).sum()


def write_examples(path, examples) -> None:
  """Writes examples as a headed TSV that keeps the exact tokens."""
  lines = [HEADER] + [
    f"{e.id}\t{e.utterance}\t{' '.join(e.tokens)}\t{e.parse}" for e in examples
  ]
  Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def label_with_teacher(
  teacher_workdir, examples, *, beam_size=4, batch_size=64
):
  """Examples re-labelled with the teacher's parses (beam search)."""
  from pqrnn_jax import checkpoints, evaluate

  model_cfg, ontology, params, cfg = checkpoints.load_for_inference(
    teacher_workdir
  )
  keep = [e for e in examples if e.tokens]
  parses = evaluate.predict_parses(
    model_cfg,
    params,
    ontology,
    [e.tokens for e in keep],
    batch_size=batch_size,
    beam_size=beam_size,
    form=cfg.data.form,
  )
  return [
    Example(f"teacher:{e.id}", e.locale, e.domain, e.utterance, e.tokens, p)
    for e, p in zip(keep, parses, strict=True)
  ]


def read_utterances(path, locale: str = ""):
  """One utterance per line -> Examples without parses (for labelling)."""
  out = []
  lines = Path(path).read_text(encoding="utf-8").splitlines()
  for i, line in enumerate(lines, 1):
    text = line.split("\t")[0].strip()
    if text:
      toks = tuple(tokenizer.tokenize(text, locale=locale))
      out.append(Example(f"{Path(path).name}:{i}", locale, "", text, toks, ""))
  return out


def sequence_examples(distill_cfg, workdir, train_examples):
  """Teacher-labelled examples to add to the gold training data.

  From `sequence_file` (a user file, read as it is) or, with
  `sequence_from_teacher`, from the teacher's beam search over the training
  utterances plus any `unlabelled_file`, cached in the workdir so a resumed
  run does not decode again.
  """
  d = distill_cfg
  if d.sequence_file:
    return list(readers.read_examples(d.sequence_file))
  if not d.sequence_from_teacher:
    return []
  if not d.teacher_workdir:
    raise ValueError("distill.sequence_from_teacher needs teacher_workdir")
  cache = Path(workdir) / "teacher_parses.tsv"
  if cache.exists():
    return list(readers.read_table(cache))
  sources = list(train_examples)
  if d.unlabelled_file:
    sources += read_utterances(d.unlabelled_file)
  logging.info(
    "labelling %d utterances with teacher %s", len(sources), d.teacher_workdir
  )
  labelled = label_with_teacher(
    d.teacher_workdir, sources, beam_size=d.teacher_beam
  )
  write_examples(cache, labelled)
  return labelled


def mix(gold, teacher, ratio: float, seed: int):
  """Gold examples plus round(ratio * len(gold)) teacher examples."""
  n = min(len(teacher), round(ratio * len(gold)))
  picked = (
    random.Random(seed).sample(teacher, n) if n < len(teacher) else teacher
  )
  return list(gold) + list(picked)


def main(argv=None):
  import argparse

  p = argparse.ArgumentParser(description="Label utterances with a teacher.")
  p.add_argument("--teacher", required=True, help="Teacher workdir.")
  p.add_argument(
    "--input",
    required=True,
    help="Utterances, one per line (or any readers format).",
  )
  p.add_argument("--out", required=True, help="Output TSV.")
  p.add_argument("--beam", type=int, default=4)
  p.add_argument("--locale", default="")
  a = p.parse_args(argv)
  try:
    exs = list(readers.read_examples(a.input))
  except DataError:  # Plain utterances, one per line: no parse column.
    exs = read_utterances(a.input, a.locale)
  try:
    labelled = label_with_teacher(a.teacher, exs, beam_size=a.beam)
  except FileNotFoundError as e:
    raise SystemExit(f"error: {e}") from None
  write_examples(a.out, labelled)
  print(f"wrote {len(labelled)} teacher parses to {a.out}")


if __name__ == "__main__":
  main()
