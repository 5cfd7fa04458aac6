"""Agreement of `tokenize` with MTOP's own tokens (column 8), per file.

Agreement = share of rows where tokenize(column 4) == column 8's tokens.

  python benchmarks/tokenizer_agreement.py [--mtop_dir DIR] [--out FILE]
      [--langs en,de,es,fr] [--show N]
"""

import collections
import json
import os
import pathlib
import unicodedata

from absl import flags

from pqrnn_jax import cli
from pqrnn_jax.data.tokenizer import tokenize

_LANGS = ("en", "de", "es", "fr")
_SPLITS = ("eval", "test")
_DEFAULT_DIR = (
  pathlib.Path(__file__).resolve().parents[1].parent / "shared/data/mtop"
)

FLAGS = flags.FLAGS
flags.DEFINE_string(
  "mtop_dir", os.environ.get("MTOP_DIR", str(_DEFAULT_DIR)), "MTOP data."
)
flags.DEFINE_string("out", "tokenizer_agreement.json", "JSON written here.")
flags.DEFINE_list("langs", list(_LANGS), "hi, th too")
flags.DEFINE_integer("show", 3, "examples per file")


def _category(ours: list[str], gold: list[str]) -> str:
  """Names the first difference, to count mismatches by kind."""
  i = 0
  while i < min(len(ours), len(gold)) and ours[i] == gold[i]:
    i += 1
  a = ours[i] if i < len(ours) else ""
  b = gold[i] if i < len(gold) else ""
  both = a + b
  if not a or not b:
    return "length"
  if any(c in both for c in "'’‘`"):
    return "apostrophe"
  if "." in both:
    return "period"
  if any(c.isdigit() for c in both):
    return "number"
  if "-" in both:
    return "hyphen"
  if all(unicodedata.category(c)[0] in "LM" for c in both):
    return "word split"
  return "other punctuation"


def _rows(path: pathlib.Path):
  """Yields (locale, utterance, gold tokens) of an 8-column MTOP file."""
  with path.open(encoding="utf-8-sig", newline="") as f:
    for line in f:
      fields = line.rstrip("\r\n").split("\t")
      yield fields[5], fields[3], json.loads(fields[7])["tokens"]


def measure(mtop_dir: pathlib.Path, langs=_LANGS, n_show: int = 5) -> dict:
  """Returns {lang: {split: stats}} with agreement and mismatch categories."""
  results = {}
  for lang in langs:
    for split in _SPLITS:
      path = mtop_dir / lang / f"{split}.txt"
      if not path.exists():
        continue
      rows = same = 0
      cats = collections.Counter()
      shown = []
      for locale, utterance, gold in _rows(path):
        rows += 1
        ours = tokenize(utterance, locale=locale)
        if ours == gold:
          same += 1
          continue
        cats[_category(ours, gold)] += 1
        if len(shown) < n_show:
          shown.append({"utterance": utterance, "ours": ours, "gold": gold})
      results.setdefault(lang, {})[split] = {
        "rows": rows,
        "agree": same,
        "agreement": same / rows if rows else 0.0,
        "mismatch_categories": dict(cats.most_common()),
        "examples": shown,
      }
  return results


def main(argv) -> None:
  cli.no_extra_args(argv)
  mtop_dir = pathlib.Path(FLAGS.mtop_dir)
  if not mtop_dir.is_dir():
    raise FileNotFoundError(f"no MTOP data at {mtop_dir}")
  results = measure(mtop_dir, FLAGS.langs, n_show=FLAGS.show)
  for lang, splits in results.items():
    for split, r in splits.items():
      print(
        f"{lang} {split:5s} {r['agreement']:.4f} "
        f"({r['agree']}/{r['rows']})  mismatches by kind: "
        f"{r['mismatch_categories']}"
      )
      for e in r["examples"]:
        diff = [t for t in e["ours"] if t not in e["gold"]]
        miss = [t for t in e["gold"] if t not in e["ours"]]
        print(f"    {e['utterance']!r}: ours {diff} gold {miss}")
  # The JSON keeps counts only: example utterances are MTOP text (CC BY-SA,
  # not ours to commit), so they are printed and never saved.
  for splits in results.values():
    for r in splits.values():
      r.pop("examples")
  out = pathlib.Path(FLAGS.out)
  out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
  print(f"wrote {out}")


if __name__ == "__main__":
  cli.run(main)
