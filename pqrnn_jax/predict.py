"""Parse utterances with a trained model.

  python -m pqrnn_jax.predict --workdir DIR "wake me up at 7 am"
  echo "wake me up at 7 am" | python -m pqrnn_jax.predict --workdir DIR

One parse per line, in input order. An utterance longer than the model's
maximum is truncated with a warning; an empty one is refused.
"""

import sys

from absl import flags

from pqrnn_jax import cli, inference
from pqrnn_jax.data import tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_integer("beam", 1, "Beam size (1: greedy).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which one.")
flags.DEFINE_string("locale", "", "Locale hint for the tokenizer.")


def main(argv):
  utterances = cli.no_extra_args(argv, allowed=True) or [
    line.rstrip("\n") for line in sys.stdin
  ]
  if not utterances:
    raise ValueError("no utterance given (pass them as arguments or on stdin)")
  token_lists = [tokenizer.tokenize(u, locale=FLAGS.locale) for u in utterances]
  for i, toks in enumerate(token_lists):
    if not toks:
      raise ValueError(f"utterance #{i + 1} is empty: nothing to parse")
  parser = inference.Parser.from_workdir(
    FLAGS.workdir, FLAGS.checkpoint, batch_size=16
  )
  for p in parser.parse_tokens(token_lists, beam_size=FLAGS.beam):
    print(p)


if __name__ == "__main__":
  cli.run(main)
