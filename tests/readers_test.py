"""Tests for the TOP-style file readers (fixtures invented here)."""

import json
import logging
import os
import pathlib

import pytest

from pqrnn_jax.data import readers
from pqrnn_jax.data.example import DataError, Example
from pqrnn_jax.data.tokenizer import tokenize

MTOP_DIR = pathlib.Path(
  os.environ.get(
    "MTOP_DIR",
    pathlib.Path(__file__).resolve().parents[1].parent / "shared/data/mtop",
  )
)


def mtop_row(ex_id, utterance, tokens, parse, domain="alarm", locale="en_XX"):
  """One 8-column MTOP line with correct UTF-8 byte spans for `tokens`."""
  data = utterance.encode("utf-8")
  spans, pos = [], 0
  for token in tokens:
    start = data.index(token.encode("utf-8"), pos)
    spans.append({"start": start, "length": len(token.encode("utf-8"))})
    pos = start + spans[-1]["length"]
  blob = json.dumps(
    {"tokens": tokens, "tokenSpans": spans},
    ensure_ascii=False,
    separators=(",", ":"),
  )
  intent = parse.split()[0][1:]
  return "\t".join([ex_id, intent, "", utterance, domain, locale, parse, blob])


ROWS = [
  mtop_row(
    "101",
    "wake me up at 6 am",
    ["wake", "me", "up", "at", "6", "am"],
    "[IN:CREATE_ALARM [SL:DATE_TIME at 6 am ] ]",
  ),
  # Non-ASCII: byte offsets differ from character offsets after "é".
  mtop_row(
    "102",
    "Réveille-moi à 7 h, s’il te plaît",
    ["Réveille", "-", "moi", "à", "7", "h", ",", "s’", "il", "te", "plaît"],
    "[IN:CREATE_ALARM [SL:DATE_TIME à 7 h ] ]",
    locale="fr_XX",
  ),
  mtop_row(
    "103",
    "call my sister",
    ["call", "my", "sister"],
    "[IN:CREATE_CALL [SL:CONTACT [IN:GET_CONTACT [SL:CONTACT_RELATED my ] "
    "[SL:TYPE_RELATION sister ] ] ] ]",
    domain="calling",
  ),
]


def write(tmp_path, name, text, encoding="utf-8"):
  path = tmp_path / name
  path.write_bytes(text.encode(encoding))
  return path


def test_read_mtop_without_final_newline(tmp_path):
  path = write(tmp_path, "eval.txt", "\n".join(ROWS))
  examples = readers.read_mtop(path)
  assert isinstance(examples, readers.Examples)
  assert examples.skipped == 0 and examples.problems == []
  assert [e.id for e in examples] == ["101", "102", "103"]
  assert examples[0] == Example(
    id="101",
    locale="en_XX",
    domain="alarm",
    utterance="wake me up at 6 am",
    tokens=("wake", "me", "up", "at", "6", "am"),
    parse="[IN:CREATE_ALARM [SL:DATE_TIME at 6 am ] ]",
  )
  assert examples[1].tokens[7] == "s’"
  assert examples[1].locale == "fr_XX"
  assert examples[2].domain == "calling"


def test_read_mtop_bom_crlf_and_final_newline(tmp_path):
  path = write(tmp_path, "a.txt", "\ufeff" + "\r\n".join(ROWS) + "\r\n")
  examples = readers.read_mtop(path)
  assert [e.id for e in examples] == ["101", "102", "103"]
  assert examples[2].parse.endswith("] ] ] ]")


def test_field_count_error_names_file_and_line(tmp_path):
  path = write(tmp_path, "bad.txt", "\n".join([ROWS[0], "a\tb\tc\td\te"]))
  with pytest.raises(DataError) as info:
    readers.read_mtop(path)
  assert info.value.line == 2
  assert f"{path}:2:" in str(info.value)
  assert "expected 8 tab-separated fields, got 5" in str(info.value)


@pytest.mark.parametrize(
  "mutate, problem",
  [
    (lambda f: f[:7] + ["{not json"], "not valid JSON"),
    (lambda f: f[:7] + ['{"tokenSpans": []}'], '"tokens"'),
    (lambda f: f[:3] + [""] + f[4:], "empty utterance"),
    (lambda f: f[:6] + [""] + f[7:], "empty parse"),
    (lambda f: f[:6] + ["[IN:X [SL:Y a ]"] + f[7:], "unbalanced"),
    (lambda f: f[:6] + ["[SL:Y a ]"] + f[7:], "does not start with"),
    # The span of "wake" shifted by one byte.
    (
      lambda f: f[:7] + [f[7].replace('"start":0', '"start":1', 1)],
      "byte span",
    ),
  ],
)
def test_malformed_mtop_rows(tmp_path, mutate, problem):
  bad = "\t".join(mutate(ROWS[0].split("\t")))
  path = write(tmp_path, "x.txt", "\n".join([ROWS[1], bad, ROWS[2]]))
  with pytest.raises(DataError, match=problem) as info:
    readers.read_mtop(path)
  assert info.value.line == 2


def test_character_offsets_are_not_byte_offsets(tmp_path):
  # Spans as character offsets: wrong after the first non-ASCII letter.
  row = ROWS[1].split("\t")
  blob = json.loads(row[7])
  text, pos = row[3], 0
  for token, span in zip(blob["tokens"], blob["tokenSpans"], strict=True):
    pos = text.index(token, pos)
    span["start"] = pos
  row[7] = json.dumps(blob, ensure_ascii=False)
  path = write(tmp_path, "chars.txt", "\t".join(row))
  with pytest.raises(DataError, match="UTF-8 byte span"):
    readers.read_mtop(path)


def test_skip_bad_counts_and_logs(tmp_path, caplog):
  lines = [ROWS[0], "only\ttwo", ROWS[1], "", ROWS[2], "x\ty\tz", ""]
  path = write(tmp_path, "mixed.txt", "\n".join(lines))
  with caplog.at_level(logging.WARNING):
    examples = readers.read_mtop(path, skip_bad=True)
  assert [e.id for e in examples] == ["101", "102", "103"]
  assert examples.skipped == 3
  assert examples.problems == [
    f"{path}:2: expected 8 tab-separated fields, got 2",
    f"{path}:4: empty line",
    f"{path}:6: expected 8 tab-separated fields, got 3",
  ]
  assert "skipped 3" in caplog.text and str(path) in caplog.text


def test_empty_line_in_the_middle_is_an_error(tmp_path):
  path = write(tmp_path, "gap.txt", "\n".join([ROWS[0], "", ROWS[1]]) + "\n")
  with pytest.raises(DataError, match="empty line") as info:
    readers.read_mtop(path)
  assert info.value.line == 2


def test_invalid_utf8_is_a_bad_row(tmp_path):
  path = tmp_path / "latin1.txt"
  path.write_bytes(b"ok\t[IN:A ]\n" + "café\t[IN:X ]".encode("latin-1"))
  with pytest.raises(DataError, match="UTF-8") as info:
    readers.read_pairs(path)
  assert info.value.line == 2


def test_read_pairs(tmp_path):
  text = (
    "What's the weather in Köln?\t[IN:GET_WEATHER [SL:LOCATION Köln ] ]\n"
    "set a timer for 10 minutes\t"
    "[IN:CREATE_TIMER [SL:METHOD_TIMER timer ] "
    "[SL:DATE_TIME for 10 minutes ] ]\n"
  )
  path = write(tmp_path, "train.tsv", text)
  examples = readers.read_pairs(path, locale="en_XX")
  assert [e.id for e in examples] == ["train.tsv:1", "train.tsv:2"]
  assert examples[0].tokens == tuple(tokenize("What's the weather in Köln?"))
  assert examples[0].tokens[:2] == ("What", "'s")
  assert {e.locale for e in examples} == {"en_XX"}
  assert {e.domain for e in examples} == {""}


def test_read_pairs_rejects_extra_columns(tmp_path):
  path = write(tmp_path, "p.tsv", "hi\t[IN:GREET ]\textra\n")
  with pytest.raises(DataError, match="expected 2 tab-separated fields"):
    readers.read_pairs(path)


def test_read_table_with_aliases(tmp_path):
  text = (
    "domain\ttext\tsemantic_parse\n"
    "alarm\tdelete my alarm\t[IN:DELETE_ALARM ]\n"
    "weather\tis it cold in Oslo\t"
    "[IN:GET_WEATHER is it [SL:WEATHER_ATTRIBUTE cold ] in "
    "[SL:LOCATION Oslo ] ]\n"
  )
  path = write(tmp_path, "topv2.tsv", text)
  examples = readers.read_table(path)
  assert [e.domain for e in examples] == ["alarm", "weather"]
  assert [e.id for e in examples] == ["topv2.tsv:2", "topv2.tsv:3"]
  assert examples[1].tokens == ("is", "it", "cold", "in", "Oslo")


def test_read_table_with_tokens_id_and_locale(tmp_path):
  text = (
    "ID\tLocale\tUtterance\tTokens\tTarget\n"
    "a1\tde_XX\tStell den Wecker\tStell den Wecker\t[IN:CREATE_ALARM ]\n"
  )
  path = write(tmp_path, "t.tsv", text)
  (ex,) = readers.read_table(path)
  assert (ex.id, ex.locale, ex.tokens) == (
    "a1",
    "de_XX",
    ("Stell", "den", "Wecker"),
  )


def test_read_table_missing_parse_column(tmp_path):
  path = write(tmp_path, "noparse.tsv", "utterance\tdomain\nhi\tsmalltalk\n")
  with pytest.raises(DataError, match="no parse column") as info:
    readers.read_table(path)
  assert info.value.line == 1
  assert str(path) in str(info.value)


def test_read_table_bad_row_line_number(tmp_path):
  text = "utterance\tparse\nok\t[IN:A ]\nno parse here\n"
  path = write(tmp_path, "t.tsv", text)
  with pytest.raises(DataError, match="got 1") as info:
    readers.read_table(path)
  assert info.value.line == 3
  examples = readers.read_table(path, skip_bad=True)
  assert len(examples) == 1 and examples.skipped == 1


def test_read_examples_auto(tmp_path):
  mtop = write(tmp_path, "m.txt", "\n".join(ROWS))
  pairs = write(tmp_path, "p.tsv", "hello there\t[IN:GREET ]\n")
  table = write(tmp_path, "t.tsv", "utterance\tparse\nhello\t[IN:GREET ]\n")
  assert readers.detect_format(mtop) == "mtop"
  assert readers.detect_format(pairs) == "pairs"
  assert readers.detect_format(table) == "table"
  assert len(readers.read_examples(mtop, locale="xx")) == 3
  assert readers.read_examples(pairs, locale="en_XX")[0].locale == "en_XX"
  assert readers.read_examples(table)[0].id == "t.tsv:2"
  # A header-shaped first line is data when the format is forced.
  forced = readers.read_examples(table, format="pairs", skip_bad=True)
  assert forced.skipped == 1 and len(forced) == 1


def test_read_examples_errors(tmp_path):
  odd = write(tmp_path, "odd.tsv", "a\tb\tc\td\n")  # 3 fields are TOP's.
  with pytest.raises(DataError, match="cannot tell the format") as info:
    readers.read_examples(odd)
  assert info.value.line == 1
  with pytest.raises(ValueError, match="format must be"):
    readers.read_examples(odd, format="csv")


def test_empty_file_reads_as_nothing(tmp_path):
  path = write(tmp_path, "empty.txt", "")
  assert readers.read_examples(path) == []
  assert readers.read_mtop(path).skipped == 0


@pytest.mark.parametrize(
  "parse, ok",
  [
    ("[IN:A ]", True),
    ("[IN:A [SL:B x y ] [SL:C [IN:D [SL:E z ] ] ] ]", True),
    ("[IN:A [SL:B x ]", False),
    ("[IN:A ] ]", False),
    ("[IN:A ] [IN:B ]", False),
    ("[IN:A ] extra", False),
    ("IN:A", False),
  ],
)
def test_check_parse(parse, ok):
  assert (readers.check_parse(parse) is None) == ok


def test_real_english_eval():
  path = MTOP_DIR / "en" / "eval.txt"
  if not path.exists():
    pytest.skip(f"no MTOP data at {path}")
  examples = readers.read_mtop(path)
  assert len(examples) == 2235
  assert examples.skipped == 0
  assert {e.locale for e in examples} == {"en_XX"}
  assert len({e.domain for e in examples}) == 11


def test_top_release_layout(tmp_path):
  """TOP (Gupta et al. 2018): raw, tokenized, tree; no header. The tokens
  are column 2, so "there 's" and "8AM" align as the tree has them."""
  rows = [
    "Is there traffic at 8AM?\tIs there traffic at 8AM ?\t"
    "[IN:GET_INFO_TRAFFIC Is there traffic [SL:DATE_TIME at 8AM ] ? ]",
    "remind me about Ann's party\tremind me about Ann 's party\t"
    "[IN:CREATE_REMINDER remind [SL:PERSON_REMINDED me ] about "
    "[SL:TODO Ann 's party ] ]",
    "remind\tremind\t[IN:CREATE_REMINDER remind [SL:PERSON_REMINDED ] ]",
  ]
  path = write(tmp_path, "train.tsv", "\n".join(rows) + "\n")
  assert readers.detect_format(path) == "top"
  exs = readers.read_examples(path)
  assert exs[0].tokens == ("Is", "there", "traffic", "at", "8AM", "?")
  assert exs[0].utterance == "Is there traffic at 8AM?"
  assert exs[1].tokens[3:5] == ("Ann", "'s")
  assert exs[2].parse.endswith("[SL:PERSON_REMINDED ] ]")  # Empty slot.
  bad = write(tmp_path, "bad.tsv", "a\t\t[IN:X ]\n")
  with pytest.raises(DataError, match="column 2"):
    readers.read_examples(bad)


def test_xsemplr_json_gives_one_example_per_language(tmp_path):
  row = {
    "id": "42",
    "question": {"en": "call mom", "de": "ruf Mama an"},
    "mr": {
      "slot_intent": {
        "en": "[IN:CREATE_CALL [SL:CONTACT mom ] ]",
        "de": "[IN:CREATE_CALL [SL:CONTACT Mama ] ]",
      }
    },
  }
  path = tmp_path / "test.json"
  path.write_text(json.dumps([row]))
  exs = readers.read_examples(path)
  assert [(e.locale, e.tokens) for e in exs] == [
    ("en_XX", ("call", "mom")),
    ("de_XX", ("ruf", "Mama", "an")),
  ]
  assert [e.id for e in readers.read_examples(path, locale="de_XX")] == ["42"]
  path.write_text(json.dumps([{"id": "1"}]))
  with pytest.raises(readers.DataError, match="test.json:1: not XSemPLR"):
    readers.read_examples(path)
