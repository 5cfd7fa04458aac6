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

A teacher is any workdir this project can load (`inference.Parser`), e.g.
a wider pQRNN-MAtt, or several ("a,b,c": their ensemble, ensemble.py).
Teacher and student share the teacher's ontology, so their action spaces
are the same.

  python -m pqrnn_jax.distill --teacher DIR --input utterances.txt \
      --out teacher_parses.tsv [--beam 4]
"""

import logging
import random
from pathlib import Path

import jax
import jax.numpy as jnp

from pqrnn_jax import ensemble, models, projection, train_step
from pqrnn_jax import model as model_lib
from pqrnn_jax.data import readers, tokenizer
from pqrnn_jax.data.example import Example

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


def make_kd_loss_fn(model, teacher, label_smoothing, alpha, temperature):
  """(1 - alpha) * CE(gold) + alpha * T^2 KL(teacher_T || student_T); the
  frozen teacher (a model sharing the ontology) gets its parameters as the
  step's `frozen` argument and reads its own fingerprint columns."""

  def loss_fn(params, batch, rng, frozen):
    inputs = model_lib.shift_right(batch["targets"])
    teacher_scores = jax.lax.stop_gradient(
      teacher.apply(
        {"params": frozen},
        projection.select_columns(
          batch["fingerprints"],
          model.config.token_features,
          teacher.config.token_features,
        ),
        batch["lengths"],
        inputs,
        **train_step.packed_kwargs(batch),
      )
    )
    scores = train_step.student_scores(model, params, batch, rng)
    sums = train_step.loss_sums(
      scores, batch["targets"], batch["weights"], label_smoothing
    )
    sums["kd"] = kd_loss_sums(
      scores, teacher_scores, batch["weights"], temperature
    )
    return (1.0 - alpha) * sums["loss"] + alpha * sums["kd"], sums

  return loss_fn


def load_teacher(config):
  """(model, params, ontology) of the token-level KD teacher, or None."""
  d = config.distill
  if not (d.teacher_workdir and d.alpha > 0):
    return None
  members = len(ensemble.workdirs(d.teacher_workdir))
  t_cfg, t_ont, t_params, _ = ensemble.load(d.teacher_workdir)
  if t_cfg.max_target_len < config.model.max_target_len:
    raise ValueError(
      f"teacher max_target_len {t_cfg.max_target_len} < student's "
      f"{config.model.max_target_len}: the teacher cannot score every step"
    )
  # Fails now, not inside the first jitted step.
  projection.feature_columns(config.model.token_features, t_cfg.token_features)
  one = jax.tree.map(lambda x: x[0], t_params) if members > 1 else t_params
  logging.info(
    "teacher %s (%d model%s): %s",
    d.teacher_workdir,
    members,
    "s" if members > 1 else "",
    models.summary(t_cfg, one),
  )
  return ensemble.wrap(models.make_model(t_cfg), members), t_params, t_ont


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
  from pqrnn_jax import inference

  parser = inference.Parser.from_workdir(teacher_workdir, batch_size=batch_size)
  keep = [e for e in examples if e.tokens]
  parses = parser.parse_tokens([e.tokens for e in keep], beam_size=beam_size)
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


def main(argv):
  from pqrnn_jax import cli

  f = cli.FLAGS
  cli.no_extra_args(argv)
  exs = read_input(f.input, f.locale)
  labelled = label_with_teacher(f.teacher, exs, beam_size=f.beam)
  write_examples(f.out, labelled)
  print(f"wrote {len(labelled)} teacher parses to {f.out}")


def read_input(path, locale: str = ""):
  """Examples of any readers format, else plain utterances one per line."""
  if not Path(path).exists():
    raise FileNotFoundError(f"no input file {path}")
  try:
    return list(readers.read_examples(path))
  except readers.DataError:  # Plain utterances: no parse column.
    return read_utterances(path, locale)


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string("teacher", None, "Teacher workdir.", required=True)
  flags.DEFINE_string(
    "input",
    None,
    "Utterances, one per line (or any readers format).",
    required=True,
  )
  flags.DEFINE_string("out", None, "Output TSV.", required=True)
  flags.DEFINE_integer("beam", 4, "Beam size.")
  flags.DEFINE_string("locale", "", "Locale hint for the tokenizer.")
  cli.run(main)
