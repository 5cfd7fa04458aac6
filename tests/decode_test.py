"""Decoding: tree masks in numpy and jax, greedy, beam search, parses."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqrnn_jax import decode, metrics, models, targets
from pqrnn_jax import model as model_lib
from pqrnn_jax.targets import CLOSE_ID, EOS_ID, PAD_ID

INTENTS = ("[IN:A", "[IN:B", "[IN:C")
SLOTS = ("[SL:X", "[SL:Y", "[SL:Z")
ONT = targets.Ontology(targets.RESERVED + INTENTS + SLOTS)
V = len(ONT)
KINDS = decode.kinds_array(ONT)


def _ontology(n_intents, n_slots):
  return targets.Ontology(
    targets.RESERVED + INTENTS[:n_intents] + SLOTS[:n_slots]
  )


def _tokens(n):
  return [f"w{i}" for i in range(n)]


def _check_rows(actions, lengths, ontology, form, max_depth=decode.MAX_DEPTH):
  """Asserts every row is a valid tree, ends in EOS, then only PAD."""
  v = len(ontology)
  for row, n in zip(np.asarray(actions), np.asarray(lengths), strict=True):
    assert EOS_ID in row, row
    end = list(row).index(EOS_ID)
    assert np.all(row[end + 1 :] == PAD_ID) and PAD_ID not in row[:end]
    assert np.all(row[row >= v] - v < n), "pointer to a padded position"
    parse = targets.actions_to_parse(row, _tokens(int(n)), ontology)
    assert metrics.is_valid_tree(parse), parse
    depth = np.cumsum([(a >= 3) & (a < v) for a in row[:end]])
    depth -= np.cumsum([a == CLOSE_ID for a in row[:end]])
    assert depth.max() <= max_depth
    if form == "decoupled":
      stack = [metrics.parse_tree(parse)]
      while stack:  # Words stand only in slots.
        node = stack.pop()
        kids = [c for c in node.children if isinstance(c, metrics.Node)]
        assert not node.is_intent or len(kids) == len(node.children), parse
        stack.extend(kids)


def _walk(score_fn, kinds, src_mask, max_len, form, vocab, max_depth):
  """Numpy driver: argmax of score_fn(step) among allowed actions."""
  b = src_mask.shape[0]
  state = decode.init_state(b, np, max_depth)
  out = []
  for t in range(max_len):
    ok = decode.allowed_mask(state, kinds, src_mask, t, max_len, form, np)
    assert ok.any(axis=1).all(), "a hypothesis was left with no action"
    act = np.argmax(np.where(ok, score_fn(t), -np.inf), axis=1)
    state = decode.transition(state, act, kinds, vocab, np)
    out.append(act)
  assert state.ended.all()
  return np.stack(out, axis=1)


@settings(max_examples=80, deadline=None)
@given(
  seed=st.integers(0, 2**31),
  n_intents=st.integers(1, 3),
  n_slots=st.integers(1, 3),
  t=st.integers(1, 7),
  max_len=st.integers(3, 24),
  max_depth=st.integers(1, 5),
  form=st.sampled_from(targets.FORMS),
  bias=st.lists(st.floats(-6, 6), min_size=6, max_size=6),
)
def test_random_scores_under_masks_always_give_valid_trees(
  seed, n_intents, n_slots, t, max_len, max_depth, form, bias
):
  ont = _ontology(n_intents, n_slots)
  kinds, v = decode.kinds_array(ont), len(ont)
  rng = np.random.default_rng(seed)
  lengths = rng.integers(0, t + 1, size=8)
  src_mask = np.arange(t)[None, :] < lengths[:, None]
  # Per-kind biases push the walk at the caps (deep, long, pointer-heavy).
  bias_a = np.concatenate([np.take(bias, kinds), np.full(t, bias[5])])

  def scores(_):
    return rng.normal(size=(8, v + t)) * 3 + bias_a

  actions = _walk(scores, kinds, src_mask, max_len, form, v, max_depth)
  _check_rows(actions, lengths, ont, form, max_depth)


def _random_tree(rng, form, n, max_depth, depth=1):
  """Actions of a random valid intent subtree (no EOS); open nodes = depth."""
  out = [int(rng.integers(3, 3 + len(INTENTS)))]
  for _ in range(rng.integers(0, 3)):
    if form == "full" and n and rng.random() < 0.4:
      out.append(V + int(rng.integers(n)))
    elif n and depth < max_depth:
      out.append(int(rng.integers(3 + len(INTENTS), V)))
      if depth + 1 < max_depth and rng.random() < 0.3:
        out += _random_tree(rng, form, n, max_depth, depth + 2)
      else:
        out += [V + int(p) for p in rng.integers(0, n, rng.integers(1, 3))]
      out.append(CLOSE_ID)
  return out + [CLOSE_ID]


@pytest.mark.parametrize("form", targets.FORMS)
def test_masks_allow_every_valid_tree_at_its_exact_length(form):
  rng = np.random.default_rng(0)
  for _ in range(200):
    n, max_depth = int(rng.integers(0, 5)), int(rng.integers(1, 6))
    gold = _random_tree(rng, form, n, max_depth) + [EOS_ID]
    parse = targets.actions_to_parse(gold, _tokens(n), ONT)
    assert metrics.is_valid_tree(parse), parse
    state = decode.init_state(1, np, max_depth)
    src_mask = np.arange(5)[None, :] < n
    for t, a in enumerate(gold):
      ok = decode.allowed_mask(state, KINDS, src_mask, t, len(gold), form, np)
      assert ok[0, a], (parse, t)
      state = decode.transition(state, np.array([a]), KINDS, V, np)


def test_numpy_and_jax_masks_and_transitions_agree():
  rng = np.random.default_rng(1)
  t, max_len = 5, 14
  lengths = rng.integers(0, t + 1, size=16)
  src_mask = np.arange(t)[None, :] < lengths[:, None]
  for form in targets.FORMS:
    state = decode.init_state(16, np, 4)
    for step in range(max_len):
      ok = decode.allowed_mask(state, KINDS, src_mask, step, max_len, form, np)
      jstate = jax.tree.map(jnp.asarray, state)
      jok = decode.allowed_mask(
        jstate,
        jnp.asarray(KINDS),
        jnp.asarray(src_mask),
        step,
        max_len,
        form,
        jnp,
      )
      np.testing.assert_array_equal(ok, jok)
      # Half the rows take any action at all, so invalid states agree too.
      free = rng.random(16) < 0.5
      scores = rng.normal(size=ok.shape)
      act = np.argmax(np.where(ok | free[:, None], scores, -np.inf), axis=1)
      state = decode.transition(state, act, KINDS, V, np)
      jnext = decode.transition(jstate, jnp.asarray(act), KINDS, V, jnp)
      jax.tree.map(np.testing.assert_array_equal, state, jnext)


def test_kinds_array_and_bad_form():
  assert list(KINDS) == [decode.KIND_CODES[k] for k in ONT.kinds()]
  state = decode.init_state(1)
  with pytest.raises(ValueError, match="form"):
    decode.allowed_mask(state, KINDS, np.ones((1, 2), bool), 0, 5, "tree")


def _tiny(vocab=V, **kw):
  base = dict(
    projection_size=32,
    bottleneck=16,
    qrnn_hidden=8,
    qrnn_layers=1,
    decoder_layers=1,
    heads=2,
    ffn=24,
    max_source_len=6,
    max_target_len=12,
    dropout=0.0,
    zoneout=0.0,
  )
  base.update(kw)
  return model_lib.ModelConfig(vocab_size=vocab, **base)


CFG = _tiny()
MODEL = model_lib.Seq2Seq(CFG)


@functools.cache
def _init_fn(cfg):
  return jax.jit(lambda key: models.init_params(cfg, key))


def _setup(seed, cfg=CFG, batch=8, scale=1.0):
  """Random params (scaled for peaky scores), fingerprints and lengths."""
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  params = jax.tree.map(lambda x: x * scale, _init_fn(cfg)(k1))
  t = cfg.max_source_len
  fps = jax.random.bits(k2, (batch, t), jnp.uint32)
  lengths = jax.random.randint(k3, (batch,), 1, t + 1)
  return params, fps, lengths


@settings(max_examples=12, deadline=None)
@given(
  seed=st.integers(0, 2**31),
  scale=st.floats(0.5, 4.0),
  form=st.sampled_from(targets.FORMS),
)
def test_constrained_greedy_on_random_models_gives_valid_trees(
  seed, scale, form
):
  params, fps, lengths = _setup(seed, scale=scale)
  actions = decode.greedy_decode(MODEL, params, fps, lengths, KINDS, form=form)
  assert actions.shape == (8, CFG.max_target_len)
  assert actions.dtype == jnp.int32
  _check_rows(actions, lengths, ONT, form)
  parses = decode.decode_to_parses(
    actions, [_tokens(int(n)) for n in lengths], ONT
  )
  assert metrics.invalid_tree_rate(parses) == 0.0


def test_unconstrained_greedy_gives_some_invalid_trees():
  invalid = []
  for seed in range(3):
    params, fps, lengths = _setup(seed, batch=16, scale=2.0)
    actions = decode.greedy_decode(
      MODEL, params, fps, lengths, KINDS, constrained=False
    )
    a = np.asarray(actions)
    # The model's own -inf still keeps pointers on real positions.
    assert np.all((a < V) | (a - V < np.asarray(lengths)[:, None]))
    assert not np.any(a[:, 0] == PAD_ID)
    toks = [_tokens(int(n)) for n in lengths]
    invalid.append(
      metrics.invalid_tree_rate(decode.decode_to_parses(a, toks, ONT))
    )
  assert max(invalid) > 0.0, invalid


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_constrained_beam_size_one_is_greedy(alpha):
  params, fps, lengths = _setup(7, scale=2.0)
  greedy = decode.greedy_decode(MODEL, params, fps, lengths, KINDS)
  beam, _ = decode.beam_search(
    MODEL, params, fps, lengths, KINDS, beam_size=1, length_penalty=alpha
  )
  np.testing.assert_array_equal(greedy, beam)


def test_unconstrained_beam_size_one_scores_at_least_greedy():
  # Unconstrained, an EOS that greedy passed over may finish a better tree.
  params, fps, lengths = _setup(7, scale=2.0)
  kw = dict(constrained=False)
  greedy = decode.greedy_decode(MODEL, params, fps, lengths, KINDS, **kw)
  _, score = decode.beam_search(
    MODEL, params, fps, lengths, KINDS, beam_size=1, length_penalty=0.0, **kw
  )
  g = decode.score_actions(MODEL, params, fps, lengths, greedy)
  ended = np.any(np.asarray(greedy) == EOS_ID, axis=1)
  assert ended.any()
  assert np.all(np.asarray(score)[ended] >= np.asarray(g)[ended] - 1e-4)


def test_beam_scores_match_teacher_forcing_and_beat_greedy():
  for seed in range(3):
    params, fps, lengths = _setup(seed, scale=3.0)
    greedy = decode.greedy_decode(MODEL, params, fps, lengths, KINDS)
    beam, score = decode.beam_search(
      MODEL, params, fps, lengths, KINDS, beam_size=4, length_penalty=0.0
    )
    _check_rows(beam, lengths, ONT, "decoupled")
    forced = decode.score_actions(MODEL, params, fps, lengths, beam)
    np.testing.assert_allclose(score, forced, rtol=1e-4, atol=1e-4)
    g = decode.score_actions(MODEL, params, fps, lengths, greedy)
    assert np.all(np.asarray(score) >= np.asarray(g) - 1e-4), (score, g)


def test_length_penalty_favours_longer_trees():
  params, fps, lengths = _setup(3, scale=3.0)

  def mean_len(alpha):
    beam, _ = decode.beam_search(
      MODEL, params, fps, lengths, KINDS, length_penalty=alpha
    )
    return float(np.mean(np.argmax(np.asarray(beam) == EOS_ID, axis=1)))

  assert mean_len(2.0) >= mean_len(0.0)


def _all_valid(kinds, n, max_len, form, vocab):
  """Every valid action sequence (padded to max_len) by depth-first search."""
  src_mask = np.arange(n)[None, :] < n
  out, todo = [], [([], decode.init_state(1, np, decode.MAX_DEPTH))]
  while todo:
    seq, state = todo.pop()
    if len(seq) == max_len or (seq and seq[-1] == EOS_ID):
      out.append(seq + [PAD_ID] * (max_len - len(seq)))
      continue
    ok = decode.allowed_mask(state, kinds, src_mask, len(seq), max_len, form)
    for a in np.flatnonzero(ok[0]):
      nxt = decode.transition(state, np.array([a]), kinds, vocab, np)
      todo.append((seq + [int(a)], nxt))
  return np.array(out, np.int32)


def test_wide_beam_is_exact_search():
  ont = _ontology(2, 1)
  kinds, v = decode.kinds_array(ont), len(ont)
  cfg = _tiny(vocab=v, max_source_len=2, max_target_len=8)
  m = model_lib.Seq2Seq(cfg)
  params, fps, _ = _setup(11, cfg=cfg, batch=1, scale=3.0)
  lengths = jnp.array([2], jnp.int32)
  every = _all_valid(kinds, 2, cfg.max_target_len, "decoupled", v)
  assert len(every) <= 64
  n = len(every)
  scores = decode.score_actions(
    m, params, jnp.repeat(fps, n, 0), jnp.repeat(lengths, n), every
  )
  beam, score = decode.beam_search(
    m, params, fps, lengths, kinds, beam_size=n, length_penalty=0.0
  )
  np.testing.assert_allclose(score[0], scores.max(), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(beam[0], every[int(np.argmax(scores))])


def test_greedy_runs_inside_an_outer_jit():
  params, fps, lengths = _setup(5)

  @jax.jit
  def run(params, fps, lengths):
    return decode.greedy_decode(MODEL, params, fps, lengths, KINDS)

  a = run(params, fps, lengths)
  np.testing.assert_array_equal(
    a, decode.greedy_decode(MODEL, params, fps, lengths, KINDS)
  )
  with pytest.raises(ValueError, match="max_target_len"):
    small = model_lib.Seq2Seq(_tiny(max_target_len=2))
    decode.greedy_decode(small, params, fps, lengths, KINDS)


@pytest.mark.parametrize("alpha", [0.6, 1.5])
def test_beam_score_is_log_prob_over_the_gnmt_penalty_in_full_form(alpha):
  """The returned score is sum log p through EOS / ((5 + len) / 6) ** alpha,
  len counting EOS, checked by teacher forcing, with form="full"."""
  params, fps, lengths = _setup(11, scale=3.0)
  beam, score = decode.beam_search(
    MODEL,
    params,
    fps,
    lengths,
    KINDS,
    beam_size=3,
    length_penalty=alpha,
    form="full",
  )
  _check_rows(beam, lengths, ONT, "full")
  forced = np.asarray(decode.score_actions(MODEL, params, fps, lengths, beam))
  n = np.argmax(np.asarray(beam) == EOS_ID, axis=1) + 1  # EOS included.
  assert np.all(np.asarray(beam)[np.arange(len(n)), n - 1] == EOS_ID)
  want = forced / ((5.0 + n) / 6.0) ** alpha
  np.testing.assert_allclose(score, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form, closes", [("full", True), ("decoupled", False)])
def test_an_empty_slot_closes_only_in_full_form(form, closes):
  kinds = KINDS
  intent = next(i for i, k in enumerate(ONT.kinds()) if k == "intent")
  slot = next(i for i, k in enumerate(ONT.kinds()) if k == "slot")
  state = decode.init_state(1, np)
  for a in (intent, slot):
    state = decode.transition(state, np.array([a]), kinds, V, np)
  src = np.ones((1, 4), bool)
  ok = decode.allowed_mask(state, kinds, src, 2, 20, form, np)
  assert bool(ok[0, CLOSE_ID]) == closes
  assert ok[0, V:].all()  # A word may always fill it.
