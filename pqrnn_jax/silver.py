"""Silver training data by annotation projection.

  python -m pqrnn_jax.silver --workdir runs/mtop_all --lang de \
    --out runs/silver/de.tsv [--limit N] [--beam 1]

MTOP's other-language train utterances have no parse here, only their ID,
top intent and domain (derived/karanpraharaj_partitioned_train/<lang>/
{0..4}.tsv). An ID is shared by the translations of one utterance and the
English rows' text is the English train file's utterance, so each
translation is joined to the English parse it translates. A trained model
then labels it with decoding constrained to that parse's frame (frames.py:
its intents, slot labels and nesting, not its words), so only the slot
spans are predicted; a row without an English parse gets its known top
intent as a prefix frame. Writes a headed TSV (id, locale, domain,
utterance, tokens, parse) that `data.train_files` reads; it is derived from
CC BY-SA data: keep it out of the repository. Labels are silver: results
trained on them are not MTOP train-split results.
"""

import collections
import csv
import logging
from pathlib import Path

from pqrnn_jax import frames as frames_lib
from pqrnn_jax import input_pipeline
from pqrnn_jax.data import readers, tokenizer

PARTITION = "derived/karanpraharaj_partitioned_train"
EN_TRAIN = "derived/en_train.utterance_decoupled.tsv"


def read_partition(root: Path, lang: str) -> list[dict]:
  """Rows {ID, intent, text, domain} of a language's five partition files
  (tab-separated, CRLF, some fields CSV-quoted)."""
  rows = []
  for k in range(5):
    path = Path(root, PARTITION, lang, f"{k}.tsv")
    if not path.exists():
      raise FileNotFoundError(f"no partitioned train file {path}")
    with open(path, encoding="utf-8", newline="") as f:
      rows += list(csv.DictReader(f, delimiter="\t"))
  return rows


def english_parses(root: Path) -> dict[str, str]:
  """ID -> English parse: English partition rows joined by their text to
  the English train file's utterances."""
  by_text = {}
  for e in readers.read_examples(Path(root, EN_TRAIN)):
    by_text.setdefault(e.utterance.strip(), e.parse)
  return {
    r["ID"]: by_text[r["text"].strip()]
    for r in read_partition(root, "en")
    if r["text"].strip() in by_text
  }


def frames_for(rows, parses: dict, ontology):
  """Per row: the frame of its English parse, else its intent as a prefix
  frame, else "" (a label outside the model's ontology); and the counts."""
  out, counts = [], collections.Counter()
  for r in rows:
    frame = frames_lib.frame_of(parses[r["ID"]]) if r["ID"] in parses else ""
    kind = "frame" if frame else "intent"
    if not frame:
      frame = f"[{r['intent']} ..."
    if not all(s in ontology for s in frame.removesuffix("...").split()):
      frame, kind = "", "unconstrained"
    out.append(frame)
    counts[kind] += 1
  return out, counts


def label(parser, rows, frames, locale: str, beam: int = 1):
  """Silver rows (id, locale, domain, utterance, tokens, parse) and how
  many rows had no tokens."""
  keep = [
    (r, f, tokenizer.tokenize(r["text"], locale=locale))
    for r, f in zip(rows, frames, strict=True)
  ]
  empty = sum(not t for _, _, t in keep)
  keep = [x for x in keep if x[2]]
  parses = parser.parse_tokens(
    [t for _, _, t in keep], frames=[f for _, f, _ in keep], beam_size=beam
  )
  out = [
    (r["ID"], locale, r["domain"], r["text"], " ".join(t), p)
    for (r, _, t), p in zip(keep, parses, strict=True)
  ]
  return out, empty


def main(argv):
  from pqrnn_jax import cli, inference

  f = cli.FLAGS
  cli.no_extra_args(argv)
  if f.lang == "en":
    raise ValueError("--lang=en: en train has gold parses")
  if f.lang == "th" and not tokenizer.thai_segmentation():
    raise ValueError(
      "--lang=th: Thai train text is unsegmented and needs PyICU to be "
      "split as MTOP's tokens are: pip install 'pqrnn_jax[thai]'"
    )
  root = Path(f.data_dir) if f.data_dir else input_pipeline.default_mtop_dir()
  parser = inference.Parser.from_workdir(f.workdir, batch_size=64)
  rows = read_partition(root, f.lang)[: f.limit or None]
  frames, counts = frames_for(rows, english_parses(root), parser.ontology)
  out, empty = label(parser, rows, frames, f"{f.lang}_XX", f.beam)
  path = Path(f.out)
  path.parent.mkdir(parents=True, exist_ok=True)
  header = ("id", "locale", "domain", "utterance", "tokens", "parse")
  # Plain tab-separated lines, no CSV quoting: readers.read_table splits
  # on tabs, and no field holds a tab or a newline.
  lines = ["\t".join(header)] + ["\t".join(row) for row in out]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  logging.info(
    "%s: %d rows labelled (%d with the English frame, %d with the top "
    "intent only, %d unconstrained), %d without tokens skipped; wrote %s",
    f.lang,
    len(out),
    counts["frame"],
    counts["intent"],
    counts["unconstrained"],
    empty,
    path,
  )


if __name__ == "__main__":
  from absl import flags

  from pqrnn_jax import cli

  flags.DEFINE_string("workdir", None, "Labelling model.", required=True)
  flags.DEFINE_string("lang", None, "de, es, fr, hi or th.", required=True)
  flags.DEFINE_string("out", None, "Silver TSV to write.", required=True)
  flags.DEFINE_string("data_dir", "", "MTOP root; '' = $MTOP_DIR or shared.")
  flags.DEFINE_integer("limit", 0, "First N rows only; 0 = all.")
  flags.DEFINE_integer("beam", 1, "Beam size.")
  cli.run(main)
