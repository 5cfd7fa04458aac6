"""Round trip parse -> actions -> parse on every staged MTOP file.

  python benchmarks/mtop_targets.py --out benchmarks/results/mtop_targets.json

For each file: rows, exact round trips, rows that round-trip only up to the
casing of copied words (aligned case-insensitively: the exact-match
ceiling of copying), rows whose slot words are not source tokens in any
casing (alignment failures), and the ontology size (intents, slots) of each
language built from all its staged files. Data: $MTOP_DIR or
../shared/data/mtop.
"""

import json
import time
from pathlib import Path

from absl import flags

from pqrnn_jax import cli, input_pipeline, targets
from pqrnn_jax.data import readers

LANGS = ("en", "de", "es", "fr", "hi", "th")

FLAGS = flags.FLAGS
flags.DEFINE_string(
  "mtop_dir", str(input_pipeline.default_mtop_dir()), "MTOP data directory."
)
flags.DEFINE_string("out", "mtop_targets.json", "JSON written here.")


def staged_files(root: Path):
  """(language, path) of every staged file: 8-column splits, en train TSV."""
  for lang in LANGS:
    for split in ("train", "eval", "test"):
      if (root / lang / f"{split}.txt").exists():
        yield lang, root / lang / f"{split}.txt"
  pairs = root / "derived" / "en_train.utterance_decoupled.tsv"
  if pairs.exists():
    yield "en", pairs


def main(argv):
  cli.no_extra_args(argv)
  a = FLAGS
  root = Path(a.mtop_dir)
  loaded = [
    (lang, f, readers.read_examples(f)) for lang, f in staged_files(root)
  ]
  if not loaded:
    raise FileNotFoundError(
      f"no MTOP files under {root} (set --mtop_dir or $MTOP_DIR)"
    )
  ontologies = {}
  for lang in LANGS:
    parses = [e.parse for lg, _, exs in loaded if lg == lang for e in exs]
    if parses:
      ontologies[lang] = targets.Ontology.build(parses)
  rows = []
  print(
    f"{'file':45s} {'rows':>6s} {'exact':>6s} {'case':>5s} {'%':>5s} "
    f"{'unaligned':>9s} {'%':>5s}"
  )
  for lang, f, exs in loaded:
    rep = targets.roundtrip_report(exs, ontologies[lang])
    rel = str(f.relative_to(root))
    share = 100 * rep["alignment_failures"] / rep["rows"]
    case = 100 * rep["case_only"] / rep["rows"]
    rep.pop("failed_ids")  # MTOP ids are dataset content: not saved.
    rows.append(
      dict(rep, file=rel, language=lang, unaligned_pct=share, case_pct=case)
    )
    print(
      f"{rel:45s} {rep['rows']:6d} {rep['exact']:6d} "
      f"{rep['case_only']:5d} {case:5.2f} "
      f"{rep['alignment_failures']:9d} {share:5.2f}"
    )
  sizes = {
    lang: {"intents": o.num_intents, "slots": o.num_slots, "symbols": len(o)}
    for lang, o in ontologies.items()
  }
  for lang, s in sizes.items():
    print(f"ontology {lang}: {s['intents']} intents, {s['slots']} slots")
  out = {
    "benchmark": "mtop_targets",
    "date": time.strftime("%Y-%m-%d"),
    "files": rows,
    "ontology": sizes,
  }
  Path(a.out).parent.mkdir(parents=True, exist_ok=True)
  Path(a.out).write_text(json.dumps(out, indent=1))
  print(f"wrote {a.out}")


if __name__ == "__main__":
  cli.run(main)
