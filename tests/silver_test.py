"""Annotation projection: partition rows joined by ID to English parses,
labelled with frame-constrained decoding, read back as training data."""

import pytest

from pqrnn_jax import frames, silver
from pqrnn_jax.data import readers, synthetic


@pytest.fixture
def parser(tiny_parser):
  return tiny_parser


def _mtop_root(tmp_path, examples):
  """A fake MTOP root: the English train TSV and a two-language partition
  (CRLF, a CSV-quoted field, one German row with no English twin)."""
  (tmp_path / "derived").mkdir()
  (tmp_path / silver.EN_TRAIN).write_text(
    "".join(f"{e.utterance}\t{e.parse}\n" for e in examples)
  )
  header = "ID\tintent\ttext\tdomain\tlabel\r\n"
  for lang in ("en", "de"):
    d = tmp_path / silver.PARTITION / lang
    d.mkdir(parents=True)
    for k in range(5):
      rows = [
        f"{i}\t{e.parse.split()[0][1:]}\t{e.utterance}\tdom\t0\r\n"
        for i, e in enumerate(examples)
        if i % 5 == k
      ]
      if lang == "de" and k == 0:
        intent = examples[0].parse.split()[0][1:]
        rows.append(f'999\t{intent}\t"quoted, text"\tdom\t0\r\n')
      (d / f"{k}.tsv").write_text(header + "".join(rows), newline="")
  return tmp_path


def test_partition_rows_get_their_english_frame(parser, tmp_path):
  examples = synthetic.splits(20, 2, 2, seed=5)["train"]
  root = _mtop_root(tmp_path, examples)
  rows = silver.read_partition(root, "de")
  assert len(rows) == 21 and "quoted, text" in {r["text"] for r in rows}
  parses = silver.english_parses(root)
  assert len(parses) == 20
  given, counts = silver.frames_for(rows, parses, parser.ontology)
  known = sum(
    all(s in parser.ontology for s in frames.frame_of(e.parse).split())
    for e in examples
  )
  assert counts["frame"] == known and counts["intent"] == 1
  out, empty = silver.label(parser, rows, given, "de_XX")
  assert empty == 0 and len(out) == 21
  for (rid, *_, parse), frame in zip(out, given, strict=True):
    if frame.endswith("..."):
      assert parse.split()[0] == frame.split()[0] and rid == "999"
    elif frame:
      assert frames.frame_of(parse) == frame
  # What main() writes is training data for data.train_files.
  path = tmp_path / "de.tsv"
  header = ("id", "locale", "domain", "utterance", "tokens", "parse")
  path.write_text(
    "\n".join("\t".join(r) for r in [header, *out]) + "\n", encoding="utf-8"
  )
  back = readers.read_examples(path)
  assert [e.parse for e in back] == [r[-1] for r in out]
  assert {e.locale for e in back} == {"de_XX"}
