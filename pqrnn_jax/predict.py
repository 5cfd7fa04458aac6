"""Parse utterances with a trained model.

  python -m pqrnn_jax.predict --workdir DIR "wake me up at 7 am"
  echo "wake me up at 7 am" | python -m pqrnn_jax.predict --workdir DIR

One parse per line, in input order. An utterance longer than the model's
maximum is truncated with a warning; an empty one is refused.
"""

import sys

from absl import app, flags

from pqrnn_jax import checkpoints, evaluate
from pqrnn_jax.data import tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_integer("beam", 1, "Beam size (1: greedy).")
flags.DEFINE_string("checkpoint", "best", "'best' or 'latest'.")
flags.DEFINE_string("locale", "", "Locale hint for the tokenizer.")


def main(argv):
  utterances = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  if not utterances:
    sys.exit("error: no utterance given (pass them as arguments or on stdin)")
  token_lists = [tokenizer.tokenize(u, locale=FLAGS.locale) for u in utterances]
  for i, toks in enumerate(token_lists):
    if not toks:
      sys.exit(f"error: utterance #{i + 1} is empty: nothing to parse")
  try:
    model_cfg, ontology, params, config = checkpoints.load_for_inference(
      FLAGS.workdir, FLAGS.checkpoint
    )
  except FileNotFoundError as e:
    sys.exit(f"error: {e}")
  parses = evaluate.predict_parses(
    model_cfg,
    params,
    ontology,
    token_lists,
    batch_size=16,
    beam_size=FLAGS.beam,
    form=config.data.form,
  )
  for p in parses:
    print(p)


if __name__ == "__main__":
  app.run(main)
