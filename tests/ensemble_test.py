"""Ensembles ("a,b" as a workdir): the mean of the members' probabilities,
in greedy decoding and as a KD teacher."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from pqrnn_jax import checkpoints, ensemble, inference, models, soup, training


def _train(d, steps, seed, **model):
  cfg = tiny.get_config()
  cfg.train.num_steps, cfg.seed = steps, seed
  for k, v in model.items():
    setattr(cfg.model, k, v)
  training.train_and_evaluate(cfg, d)
  return str(d)


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  new = tmp_path_factory.mktemp
  return (
    _train(new("a"), 20, seed=0),
    _train(new("b"), 20, seed=1),
    _train(new("wide"), 1, seed=0, ffn=48),
  )


def test_members_stack_and_mismatches_are_refused(workdirs):
  a, b, wide = workdirs
  cfg, _, params, _ = ensemble.load(f"{a},{b}")
  one = inference.Parser.from_workdir(a).params
  assert jax.tree.all(
    jax.tree.map(lambda e, x: e.shape == (2,) + x.shape, params, one)
  )
  with pytest.raises(ValueError, match=f"member {wide}: its model differs"):
    ensemble.load(f"{a},{wide}")


def test_members_may_differ_in_dropout_only(workdirs):
  a, _, _ = workdirs
  cfg = checkpoints.load_for_inference(a)[0]
  for k, v in (("dropout", 0.3), ("word_dropout", 0.2), ("zoneout", 0.5)):
    assert ensemble.same_model(cfg.replace(**{k: v}), cfg)
  assert not ensemble.same_model(cfg.replace(ffn=cfg.ffn + 1), cfg)


def test_scores_are_the_log_mean_probability(workdirs):
  a, b, _ = workdirs
  cfg, ontology, params, _ = ensemble.load(f"{a},{b}")
  model = models.make_model(cfg)
  rng = np.random.default_rng(0)
  fps = rng.integers(0, 2**31, (3, cfg.max_source_len)).astype(np.int32)
  lengths = np.array([2, 5, 9], np.int32)
  prev = rng.integers(0, len(ontology), (3, 6)).astype(np.int32)
  got = ensemble.Ensemble(model).apply({"params": params}, fps, lengths, prev)
  members = [jax.tree.map(lambda x, e=e: x[e], params) for e in range(2)]
  logp = [
    jax.nn.log_softmax(model.apply({"params": p}, fps, lengths, prev), -1)
    for p in members
  ]
  want = jnp.logaddexp(*logp) - jnp.log(2.0)
  finite = np.isfinite(want)
  np.testing.assert_array_equal(np.isfinite(got), finite)
  np.testing.assert_allclose(got[finite], want[finite], atol=1e-5)
  # Two different members: not merely one of them.
  assert np.abs(np.asarray(logp[0] - logp[1]))[finite].max() > 1e-3


def test_greedy_parses_of_a_twice_taken_model_are_its_own(workdirs):
  a, _, _ = workdirs
  tokens = [["wake", "me", "at", "7"], ["call", "mom"], ["play", "jazz", "now"]]
  one = inference.Parser.from_workdir(a, batch_size=8)
  two = inference.Parser.from_workdir(f"{a},{a}", batch_size=8)
  assert two.members == 2
  assert two.parse_tokens(tokens) == one.parse_tokens(tokens)
  with pytest.raises(ValueError, match="beam search takes one model"):
    two.parse_tokens(tokens, beam_size=4)


def test_an_ensemble_teaches_token_level_kd(workdirs, tmp_path):
  a, b, _ = workdirs
  cfg = tiny.get_config()
  cfg.train.num_steps = 2
  cfg.distill.teacher_workdir, cfg.distill.alpha = f"{a},{b}", 0.5
  training.train_and_evaluate(cfg, tmp_path)
  assert inference.Parser.from_workdir(str(tmp_path)).parse_tokens([["hi"]])


def test_a_soup_is_the_members_mean_and_loads_as_a_workdir(workdirs, tmp_path):
  a, b, _ = workdirs
  out = soup.write(tmp_path / "soup", f"{a},{b}")
  pa, pb = (checkpoints.load_for_inference(w)[2] for w in (a, b))
  got = checkpoints.load_for_inference(out)[2]
  jax.tree.map(
    lambda g, x, y: np.testing.assert_allclose(g, (x + y) / 2, atol=1e-6),
    got,
    pa,
    pb,
  )
  tokens = [["wake", "me", "at", "7"], ["call", "mom"]]
  twice = soup.write(tmp_path / "twice", f"{a},{a}")
  assert inference.Parser.from_workdir(str(twice)).parse_tokens(
    tokens
  ) == inference.Parser.from_workdir(a).parse_tokens(tokens)
  with pytest.raises(ValueError, match="already holds checkpoints"):
    soup.write(out, f"{a},{b}")
  with pytest.raises(ValueError, match="needs two workdirs"):
    soup.write(tmp_path / "one", a)


def test_a_greedy_soup_keeps_the_members_that_help():
  score = {(0,): 0.5, (1,): 0.7, (2,): 0.6, (3,): 0.1}
  score.update({(1, 2): 0.72, (1, 2, 0): 0.71, (1, 2, 3): 0.72})
  chosen, steps = soup.select(4, lambda i: score[tuple(i)], log=lambda _: 0)
  # Own scores first, then by that order: 0 lowers the soup, 3 does not.
  assert chosen == [1, 2, 3]
  assert [(s["members"], s["kept"]) for s in steps[4:]] == [
    ([1, 2], True),
    ([1, 2, 0], False),
    ([1, 2, 3], True),
  ]
  assert [s["eval"] for s in steps[:4]] == [0.5, 0.7, 0.6, 0.1]


def test_a_greedy_soup_is_chosen_on_eval_and_says_how(workdirs, tmp_path):
  a, b, _ = workdirs
  out = soup.write(tmp_path / "g", f"{a},{a},{b}", pick=True)
  with checkpoints.best_manager(out / "best") as mgr:
    meta = checkpoints.read_meta(mgr, 0)["soup"]
  steps = meta["greedy_on_eval"]
  assert len(steps) == 5 and steps[0]["eval"] == steps[1]["eval"]
  kept = [s for s in steps if s["kept"]]
  assert meta["members"] == kept[-1]["members"]
  assert [s["eval"] for s in kept] == sorted(s["eval"] for s in kept)


def test_a_branch_starts_from_another_runs_checkpoint(workdirs, tmp_path):
  a, _, _ = workdirs
  latest = lambda w: checkpoints.load_for_inference(w, "latest")[2]
  cfg = tiny.get_config()
  # Its newest step (20): nothing left to train, whatever the seed.
  cfg.seed, cfg.train.num_steps, cfg.train.branch_from = 5, 20, a
  training.train_and_evaluate(cfg, tmp_path / "same")
  jax.tree.map(
    np.testing.assert_array_equal, latest(tmp_path / "same"), latest(a)
  )
  cfg.seed, cfg.train.branch_from = 1, f"{a}:18"  # Two steps of its own.
  training.train_and_evaluate(cfg, tmp_path / "b1")
  moved = jax.tree.map(
    lambda x, y: np.abs(x - y).max(), latest(tmp_path / "b1"), latest(a)
  )
  assert max(jax.tree.leaves(moved)) > 0
  cfg.train.branch_from = f"{a}:7"
  with pytest.raises(FileNotFoundError, match=r"no checkpoint step 7 .*18, 20"):
    training.train_and_evaluate(cfg, tmp_path / "bad")
