"""What USE multilingual v3's pieces make of each MTOP language's words.

  python benchmarks/piece_coverage.py [--langs en,de,es,fr,hi,th] \
    [--out benchmarks/results/piece_coverage.json]

Per language, over the test file's tokens (MTOP's column 8): the share of
tokens with at least one known piece (a non-zero pooled vector), with no
unknown piece at all, and the mean number of pieces per token.
USE-multilingual was trained on 16 languages without Hindi.
"""

import json
import os
from pathlib import Path

from absl import flags

from pqrnn_jax import cli, pretrained
from pqrnn_jax.data import readers

_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/mtop"
FLAGS = flags.FLAGS
flags.DEFINE_string("mtop_dir", os.environ.get("MTOP_DIR", str(_DIR)), "")
flags.DEFINE_list("langs", ["en", "de", "es", "fr", "hi", "th"], "")
flags.DEFINE_string("out", "piece_coverage.json", "JSON written here.")


def coverage(table: pretrained.PieceTable, tokens) -> dict:
  """Shares of tokens with a known piece / with no unknown piece."""
  known = whole = pieces = 0
  for t in tokens:
    ids = table.encode(t)
    kept = table.pieces(t)
    known += bool(kept)
    whole += pretrained.UNK_PIECE not in ids
    pieces += len(kept)
  n = max(len(tokens), 1)
  return {
    "tokens": len(tokens),
    "with_known_piece": known / n,
    "without_unknown_piece": whole / n,
    "pieces_per_token": pieces / n,
  }


def main(argv):
  cli.no_extra_args(argv)
  table = pretrained.PieceTable()
  out = {}
  for lang in FLAGS.langs:
    exs = readers.read_examples(Path(FLAGS.mtop_dir, lang, "test.txt"))
    out[lang] = coverage(table, [t for e in exs for t in e.tokens])
    r = out[lang]
    print(
      f"{lang}: {r['tokens']} tokens, {r['with_known_piece']:.1%} with a "
      f"known piece, {r['without_unknown_piece']:.1%} without an unknown "
      f"piece, {r['pieces_per_token']:.2f} pieces per token"
    )
  Path(FLAGS.out).write_text(json.dumps(out, indent=2) + "\n")
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
