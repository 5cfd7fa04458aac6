"""Targets: parse <-> actions round trips, alignment, ontology JSON."""

import os
from pathlib import Path

import pytest

from pqrnn_jax import metrics, targets
from pqrnn_jax.data.example import Example

NESTED = (
  "[IN:CREATE_REMINDER [SL:PERSON_REMINDED me ] [SL:TODO [IN:CREATE_CALL "
  "[SL:CONTACT [IN:GET_CONTACT [SL:TYPE_RELATION mom ] ] ] ] ] "
  "[SL:DATE_TIME tomorrow ] ]"
)
NESTED_TOKENS = "remind me to call my mom tomorrow".split()
MTOP_DIR = Path(
  os.environ.get(
    "MTOP_DIR", Path(__file__).resolve().parents[2] / "shared/data/mtop"
  )
)


def test_ontology_build_reserved_and_sorted():
  ont = targets.Ontology.build([NESTED, "[IN:A [SL:B x ] ]"])
  assert ont.symbols[:3] == ("<pad>", "<eos>", "]")
  assert ont.num_intents == 4 and ont.num_slots == 6
  kinds = ont.kinds()
  assert kinds[:3] == ["pad", "eos", "close"]
  assert kinds.index("slot") == 3 + ont.num_intents


def test_ontology_json_roundtrip(tmp_path):
  ont = targets.Ontology.build([NESTED])
  ont.save(tmp_path / "o.json")
  assert targets.Ontology.load(tmp_path / "o.json") == ont


def test_ontology_rejects_bad_symbols():
  with pytest.raises(targets.OntologyError):
    targets.Ontology(("<pad>", "<eos>", "]", "word"))
  with pytest.raises(targets.OntologyError):
    targets.Ontology(("[IN:A",))


def test_nested_roundtrip_and_pointer_positions():
  ont = targets.Ontology.build([NESTED])
  acts = targets.parse_to_actions(NESTED, NESTED_TOKENS, ont)
  v = len(ont)
  assert acts[-1] == targets.EOS_ID
  pointers = [a - v for a in acts if a >= v]
  assert pointers == [1, 5, 6]  # me, mom, tomorrow
  assert targets.actions_to_parse(acts, NESTED_TOKENS, ont) == NESTED


def test_repeated_words_prefer_contiguous_span_after_previous():
  tokens = "play the the beatles after the news".split()
  parse = "[IN:PLAY [SL:ARTIST the beatles ] [SL:AFTER the news ] ]"
  ont = targets.Ontology.build([parse])
  acts = targets.parse_to_actions(parse, tokens, ont)
  ptr = [a - len(ont) for a in acts if a >= len(ont)]
  assert ptr == [2, 3, 5, 6]
  assert targets.actions_to_parse(acts, tokens, ont) == parse


def test_whitespace_is_normalised():
  parse = "[IN:A   [SL:B  x ]\t]"
  ont = targets.Ontology.build([parse])
  acts = targets.parse_to_actions(parse, ["x"], ont)
  assert targets.actions_to_parse(acts, ["x"], ont) == "[IN:A [SL:B x ] ]"


@pytest.mark.parametrize(
  "parse",
  ["", "[IN:A [SL:B x ]", "[IN:A ] ]", "x [IN:A ]", "[SL:B x ]", "[IN:A ] y"],
)
def test_not_a_tree_raises(parse):
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  with pytest.raises(targets.OntologyError):
    targets.parse_to_actions(parse, ["x", "y"], ont)


def test_unknown_label_and_unaligned_word():
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  with pytest.raises(targets.OntologyError, match="IN:Z"):
    targets.parse_to_actions("[IN:Z ]", ["x"], ont)
  with pytest.raises(targets.AlignmentError, match="'y'"):
    targets.parse_to_actions("[IN:A [SL:B y ] ]", ["x"], ont)


def test_slot_words_cased_unlike_the_utterance_align_case_insensitively():
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  tokens = ["open", "whatsapp", "Whatsapp"]
  acts = targets.parse_to_actions("[IN:A [SL:B WhatsApp ] ]", tokens, ont)
  # No exact match: the first case-insensitive one, copied as written.
  assert targets.actions_to_parse(acts, tokens, ont) == (
    "[IN:A [SL:B whatsapp ] ]"
  )
  # An exact match wins over an earlier case-insensitive one.
  acts = targets.parse_to_actions("[IN:A [SL:B Whatsapp ] ]", tokens, ont)
  assert acts[2] == len(ont) + 2


def test_actions_to_parse_stops_at_eos_and_marks_bad_pointer():
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  v = len(ont)
  a, b = ont.id("[IN:A"), ont.id("[SL:B")
  acts = [a, b, v + 7, 2, 2, targets.EOS_ID, a]
  assert targets.actions_to_parse(acts, ["x"], ont) == "[IN:A [SL:B <oov> ] ]"


def test_full_form_roundtrip():
  parse = "[IN:GET_WEATHER what is the weather in [SL:LOCATION paris ] ]"
  tokens = "what is the weather in paris".split()
  ont = targets.Ontology.build([parse])
  acts = targets.parse_to_actions(parse, tokens, ont)
  assert targets.actions_to_parse(acts, tokens, ont) == parse
  assert sum(a >= len(ont) for a in acts) == len(tokens)


def test_roundtrip_report_counts_failures():
  exs = [
    Example("1", "", "", "x", ("x",), "[IN:A [SL:B x ] ]"),
    Example("2", "", "", "x", ("x",), "[IN:A [SL:B y ] ]"),
    Example("3", "", "", "x", ("x",), "[IN:Q ]"),
  ]
  ont = targets.Ontology.build([exs[0].parse])
  rep = targets.roundtrip_report(exs, ont)
  assert rep["rows"] == 3 and rep["exact"] == 1
  assert rep["alignment_failures"] == 1 and rep["ontology_failures"] == 1
  assert rep["failed_ids"]["alignment_failures"] == ["2"]


@pytest.mark.parametrize("lang", ["en", "de", "es", "fr", "hi", "th"])
def test_mtop_roundtrip_real_data(lang):
  from pqrnn_jax.data import readers

  files = [MTOP_DIR / lang / f"{s}.txt" for s in ("eval", "test")]
  if not all(f.exists() for f in files):
    pytest.skip(f"MTOP data not found under {MTOP_DIR}")
  exs = [e for f in files for e in readers.read_mtop(f)]
  ont = targets.Ontology.build(e.parse for e in exs)
  rep = targets.roundtrip_report(exs, ont)
  assert rep["ontology_failures"] == 0 and rep["mismatches"] == 0
  # Slot words that are not source tokens, in any casing (German compound
  # parts, mostly), and rows that align only case-insensitively.
  assert rep["alignment_failures"] / rep["rows"] < 0.01, rep
  assert rep["case_only"] / rep["rows"] < 0.03, rep


def test_copied_bracket_tokens_are_escaped_into_a_valid_tree():
  ont = targets.Ontology.build(["[IN:A [SL:B x ] ]"])
  v = len(ont)
  acts = [ont.id("[IN:A"), ont.id("[SL:B"), v, v + 1, v + 2]
  acts += [ont.id("]"), ont.id("]"), targets.EOS_ID]
  out = targets.actions_to_parse(acts, ["[", "]", "[IN:X"], ont)
  assert out == "[IN:A [SL:B -LSB- -RSB- -LSB-IN:X ] ]"
  assert metrics.is_valid_tree(out)
