"""Training: end to end, resume equality, pmap parity, CLIs."""

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from configs import tiny
from pqrnn_jax import checkpoints, inference, train_state, train_step, training
from tests.commands import run


def _params(workdir):
  with ocp.CheckpointManager(Path(workdir, "checkpoints").absolute()) as mgr:
    step = mgr.latest_step()
    r = mgr.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
    )
  return step, r["state"]["params"]


def test_loss_ignores_impossible_actions():
  scores = jnp.array([[[0.0, -jnp.inf, 1.0, -jnp.inf]]])
  sums = train_step.loss_sums(scores, jnp.array([[2]]), jnp.ones((1, 1)), 0.1)
  assert np.isfinite(sums["loss"]) and sums["correct"] == 1
  # With smoothing 0 the loss is the plain NLL over the two possible actions.
  sums0 = train_step.loss_sums(scores, jnp.array([[2]]), jnp.ones((1, 1)), 0.0)
  np.testing.assert_allclose(sums0["loss"], np.log(1 + np.exp(-1.0)), 1e-6)


def test_loss_over_the_data_token_mean_weighs_every_token_alike():
  # A sum loss of the weights: its gradient per token is 1 / normaliser.
  def loss_fn(params, batch, rng, frozen=None):
    total = (params["w"] * batch["weights"]).sum()
    return total, {"loss": total, "tokens": batch["weights"].sum()}

  def grad(batch, tokens_per_batch):
    state = train_state.TrainState.create(
      params={"w": jnp.float32(1.0)}, tx=optax.sgd(1.0)
    )
    step = jax.vmap(
      lambda b: train_step.train_step(
        state,
        b,
        jax.random.key(0),
        loss_fn=loss_fn,
        tokens_per_batch=tokens_per_batch,
      )[0].params["w"],
      axis_name="batch",
    )
    return 1.0 - float(step(jax.tree.map(lambda x: x[None], batch))[0])

  full = {"weights": jnp.ones((4, 5))}  # 20 tokens.
  short = {"weights": jnp.ones((1, 5))}  # A bucket's last batch: 5 tokens.
  # Per batch: each batch moves the parameter as far, whatever it holds.
  assert grad(full, None) == pytest.approx(grad(short, None)) == 1.0
  # Over the data's mean tokens per batch: in proportion to the tokens.
  assert grad(full, 20.0) == pytest.approx(1.0)
  assert grad(short, 20.0) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tiny")
  metrics = training.train_and_evaluate(tiny.get_config(), workdir)
  return workdir, metrics


def test_end_to_end_train_evaluate_predict(trained):
  workdir, metrics = trained
  assert set(metrics) >= {"exact_match", "slot_f1", "invalid_tree_rate"}
  assert metrics["invalid_tree_rate"] == 0.0  # Constrained decoding.
  step, _ = _params(workdir)
  assert step == tiny.get_config().train.num_steps
  assert (workdir / "best" / "best.json").exists()
  assert list(workdir.glob("events.out.tfevents*"))
  parser = inference.Parser.from_workdir(workdir, batch_size=4)
  parses = parser.parse_tokens([["wake", "me", "at", "7"], ["hi"]])
  assert len(parses) == 2 and all(p.startswith("[IN:") for p in parses)


@pytest.mark.parametrize("matmul", ["float32", "bfloat16"])
def test_resume_gives_same_parameters(tmp_path, matmul):
  cfg = tiny.get_config()
  cfg.model.matmul = matmul
  cfg.train.num_steps, cfg.eval_every, cfg.checkpoint_every = 8, 100, 100
  training.train_and_evaluate(cfg, tmp_path / "straight")
  cfg.train.stop_after = 5
  training.train_and_evaluate(cfg, tmp_path / "resumed")
  assert _params(tmp_path / "resumed")[0] == 5
  cfg.train.stop_after = 0
  training.train_and_evaluate(cfg, tmp_path / "resumed")
  s1, p1 = _params(tmp_path / "straight")
  s2, p2 = _params(tmp_path / "resumed")
  assert s1 == s2 == 8
  chex.assert_trees_all_equal(p1, p2)


def test_params_ema_is_a_running_average():
  params = {"w": jnp.array([0.0, 4.0])}
  state = train_state.TrainState.create(
    params=params, tx=optax.sgd(1.0), ema_decay=0.75
  )
  expect = np.array([0.0, 4.0])
  for g in ([1.0, -1.0], [2.0, 0.0]):
    state = state.apply_gradients(grads={"w": jnp.array(g)})
    expect = 0.75 * expect + 0.25 * np.asarray(state.params["w"])
  np.testing.assert_allclose(state.ema["w"], expect, 1e-6)
  np.testing.assert_allclose(state.averaged().params["w"], expect, 1e-6)
  plain = train_state.TrainState.create(params=params, tx=optax.sgd(1.0))
  assert plain.apply_gradients(grads=params).ema is None


def test_schedule_warms_up_then_decays_to_its_end_fraction():
  cfg = tiny.get_config().train
  cfg.learning_rate, cfg.warmup_steps, cfg.num_steps = 1e-2, 10, 110
  for fraction in (0.01, 0.5):
    cfg.end_lr_fraction = fraction
    lr = train_state.learning_rate_schedule(cfg)
    np.testing.assert_allclose(lr(5), 5e-3, 1e-6)
    np.testing.assert_allclose(lr(10), 1e-2, 1e-6)
    np.testing.assert_allclose(lr(60), 1e-2 * (1 + fraction) / 2, 1e-6)
    np.testing.assert_allclose(lr(110), 1e-2 * fraction, 1e-6)
  cfg.schedule_steps, cfg.num_steps = 110, 60  # Stops halfway down.
  np.testing.assert_allclose(
    train_state.learning_rate_schedule(cfg)(60), lr(60), 1e-6
  )


def test_ema_run_scores_and_saves_the_average(tmp_path):
  cfg = tiny.get_config()
  cfg.train.ema_decay = 0.5
  cfg.train.num_steps = cfg.eval_every = cfg.checkpoint_every = 4
  training.train_and_evaluate(cfg, tmp_path)
  best = json.loads((tmp_path / "best" / "best.json").read_text())
  assert best["step"] == 4 and 0.0 <= best["raw_exact_match"] <= 1.0
  model_cfg, _, best_params, _ = checkpoints.load_for_inference(tmp_path)
  state = train_state.create_train_state(
    cfg.train, model_cfg, jax.random.key(1)
  )
  with checkpoints.manager(tmp_path / "checkpoints", 1) as mgr:
    state = checkpoints.restore_state(mgr, 4, state)
  chex.assert_trees_all_equal(best_params, state.ema)
  # The latest checkpoint's inference parameters are the average too.
  _, _, latest_params, _ = checkpoints.load_for_inference(tmp_path, "latest")
  chex.assert_trees_all_equal(latest_params, state.ema)
  raw = jax.tree.leaves(state.params)
  assert any(
    not np.allclose(a, b)
    for a, b in zip(raw, jax.tree.leaves(best_params), strict=True)
  )


@pytest.mark.parametrize("packing", [False, True])
def test_pmap_two_devices_matches_one(tmp_path, packing):
  assert jax.local_device_count() >= 2, "conftest sets 4 fake CPU devices"
  cfg = tiny.get_config()
  cfg.model.dropout = cfg.model.zoneout = 0.0  # Per-device rngs differ.
  cfg.train.num_steps, cfg.eval_every = 4, 100
  cfg.train.packing = packing
  out = {}
  for n in (1, 2):
    cfg.train.devices = n
    training.train_and_evaluate(cfg, tmp_path / f"d{n}")
    out[n] = _params(tmp_path / f"d{n}")[1]
  chex.assert_trees_all_close(out[1], out[2], atol=2e-5, rtol=0)


def test_cli_predict_and_errors(trained, tmp_path):
  workdir, _ = trained
  r = run(
    "-m",
    "pqrnn_jax.predict",
    f"--workdir={workdir}",
    stdin="set an alarm for 7 am\nwhat is the weather\n",
  )
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  assert len(lines) == 2 and all(x.startswith("[IN:") for x in lines)
  r = run("-m", "pqrnn_jax.predict", f"--workdir={tmp_path}", "hello")
  assert r.returncode != 0 and "no checkpoint" in r.stderr
  r = run("-m", "pqrnn_jax.predict", f"--workdir={workdir}", "  ")
  assert r.returncode != 0 and "empty" in r.stderr
  r = run(
    "train.py",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path}",
    "--config.train.batch_sise=3",
  )
  assert r.returncode != 0 and "batch_sise" in r.stderr


def test_packing_is_refused_for_a_model_that_cannot_read_it():
  cfg = tiny.get_config()
  cfg.train.packing = True
  lstm = type("Cfg", (), {"arch": "lstm"})()
  with pytest.raises(ValueError, match="train.packing=True needs pQRNN"):
    training._check_packing(cfg, lstm, None)
  assert not training._check_packing(tiny.get_config(), lstm, None)
