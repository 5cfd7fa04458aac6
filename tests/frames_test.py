"""Decoding constrained to a given frame: symbols fixed, words predicted."""

import numpy as np
import pytest

from pqrnn_jax import frames, input_pipeline, metrics
from pqrnn_jax import targets as targets_lib


def test_frame_of_drops_words_keeps_nesting():
  parse = "[IN:A [SL:B x y ] [SL:C [IN:D [SL:E z ] ] ] ]"
  assert frames.frame_of(parse) == "[IN:A [SL:B ] [SL:C [IN:D [SL:E ] ] ] ]"
  with pytest.raises(targets_lib.OntologyError):
    frames.frame_of("[IN:A ")


def test_need_counts_symbols_and_a_word_per_slot_without_nested_intent():
  ont = targets_lib.Ontology.build(["[IN:A [SL:B x ] [SL:C [IN:D ] ] ]"])
  sym, need, free = frames.frame_arrays(
    ["[IN:A [SL:B ] [SL:C [IN:D ] ] ]", "[IN:A ...", ""], ont, 16
  )
  assert sym.shape == need.shape == (3, 16)
  # 8 symbols + EOS + one word (SL:B; SL:C holds an intent).
  assert need[0, 0] == 10 and need[0, 8] == 1
  assert list(free) == [17, 1, 0]
  with pytest.raises(ValueError, match="symbols"):
    frames.frame_arrays(["[IN:A [SL:B ] ]"], ont, 4)


@pytest.fixture
def parser(tiny_parser):
  return tiny_parser


@pytest.mark.parametrize("beam", [1, 3])
def test_decoded_parses_have_exactly_the_given_frame(parser, beam):
  examples = input_pipeline.load_split(parser.config.data, "test")[:12]
  tokens = [e.tokens for e in examples]
  # Each input gets the frame of another example's parse: the model would
  # not produce it unprompted.
  given = [frames.frame_of(e.parse) for e in examples[1:] + examples[:1]]
  given = [
    g if all(s in parser.ontology for s in g.split()) else "" for g in given
  ]
  out = parser.parse_tokens(tokens, frames=given, beam_size=beam)
  assert metrics.compute_all(out, out)["invalid_tree_rate"] == 0.0
  for g, o, t in zip(given, out, tokens, strict=True):
    if g:
      assert frames.frame_of(o) == g
      assert set(o.split()) - set(g.split()) <= set(t)  # Words are copied.


def test_a_prefix_frame_fixes_the_root_intent_only(parser):
  intents = [s for s in parser.ontology.symbols if s.startswith("[IN:")]
  tokens = [["wake", "me", "up"]] * len(intents)
  out = parser.parse_tokens(tokens, frames=[f"{i} ..." for i in intents])
  assert [o.split()[0] for o in out] == intents
  free = parser.parse_tokens(tokens[:1], frames=[""])
  assert free == parser.parse_tokens(tokens[:1])
  with pytest.raises(ValueError, match="constrained"):
    parser.parse_tokens(tokens[:1], frames=[""], constrained=False)
  np.testing.assert_array_equal(
    parser.decode_tokens(tokens[:2], frames=["", ""]),
    parser.decode_tokens(tokens[:2]),
  )
