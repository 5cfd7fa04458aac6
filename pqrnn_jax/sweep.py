"""Ablation sweeps: train, evaluate and export each point of a config grid.

  python -m pqrnn_jax.sweep --config configs/mtop.py:en \
      --sweep model.projection_size=64,128,256,512,1024 --workdir DIR

Several --sweep flags form a grid. Each point is an ordinary training run in
DIR/points/<name> (the same as `train.py --workdir` with the point's
overrides), so points can also be launched as separate jobs on a cluster;
`--collect` then only gathers what is there. Re-running resumes: finished
points are skipped, an interrupted one resumes from its checkpoint, a
failed one is recorded with its error and the sweep goes on. Writes
DIR/results.csv, DIR/results.md and PNG plots of exact match against each
numeric swept key and against the int8 .tflite bytes.
"""

import argparse
import ast
import csv
import importlib.util
import itertools
import json
import logging
import sys
import time
import traceback
from pathlib import Path

FIELDS = (
  "point",
  "status",
  "params",
  "int8_bytes",
  "exact_match",
  "intent_accuracy",
  "slot_f1",
  "invalid_tree_rate",
  "seconds",
  "error",
)


def load_config(spec: str):
  """A config file `path[:arg]`, as train.py's --config takes it."""
  sys.path.insert(0, str(Path.cwd()))  # Configs import `configs.default`.
  path, _, arg = spec.partition(":")
  if not Path(path).exists():
    raise SystemExit(f"error: no config file {path}")
  sp = importlib.util.spec_from_file_location("sweep_config", path)
  mod = importlib.util.module_from_spec(sp)
  sp.loader.exec_module(mod)
  return mod.get_config(arg) if arg else mod.get_config()


def parse_sweeps(specs, config) -> list[dict]:
  """["a.b=1,2", "c=x"] -> grid of {key: typed value} (checked keys)."""
  axes = []
  for spec in specs:
    key, sep, values = spec.partition("=")
    if not sep or not values:
      raise SystemExit(f"error: --sweep {spec!r}: expected key=v1,v2,...")
    node = config
    *parents, leaf = key.split(".")
    try:
      for p in parents:
        node = node[p]
      current = node[leaf]
    except KeyError:
      raise SystemExit(
        f"error: --sweep {spec!r}: no config key {key}"
      ) from None
    kind = type(current)
    if kind in (tuple, list):  # Python literals, `;`-separated: (),("a",)
      axes.append([(key, _literal(spec, v)) for v in values.split(";")])
      continue
    cast = (
      (lambda v: v.lower() in ("1", "true", "yes")) if kind is bool else kind
    )
    axes.append([(key, cast(v)) for v in values.split(",")])
  return [dict(p) for p in itertools.product(*axes)]


def _literal(spec, text):
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    raise SystemExit(
      f"error: --sweep {spec!r}: {text!r} is not a Python literal"
    ) from None
  if not isinstance(value, tuple | list):
    raise SystemExit(f"error: --sweep {spec!r}: {text!r} is not a tuple")
  return tuple(value)


def point_name(overrides: dict) -> str:
  return ",".join(f"{k}={v}" for k, v in overrides.items()).replace("/", "_")


def apply(config, overrides: dict):
  config = config.copy_and_resolve_references()
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def run_point(config, point_dir: Path, split: str, export: bool) -> dict:
  """Trains (or resumes), evaluates on `split`, exports int8; a result row."""
  from pqrnn_jax import checkpoints, evaluate, input_pipeline, training
  from pqrnn_jax import export as export_lib
  from pqrnn_jax import model as model_lib

  t0 = time.time()
  training.train_and_evaluate(config, point_dir)
  model_cfg, ontology, params, cfg = checkpoints.load_for_inference(point_dir)
  examples = input_pipeline.load_split(cfg.data, split)
  m = evaluate.evaluate_examples(
    model_cfg, params, ontology, examples, form=cfg.data.form
  )["metrics"]
  row = {k: m[k] for k in FIELDS if k in m}
  row["params"] = model_lib.param_count(params)
  if export:
    out = export_lib.export_workdir(point_dir, point_dir / "int8.tflite")
    row["int8_bytes"] = out["bytes"]
  row["seconds"] = round(time.time() - t0, 1)
  return row


def write_reports(workdir: Path, rows: list[dict], keys: list[str]) -> None:
  """results.csv, results.md and PNG plots from the result rows."""
  with open(workdir / "results.csv", "w", newline="") as f:
    w = csv.DictWriter(f, FIELDS + tuple(keys), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  cols = list(keys) + list(FIELDS[1:7])  # status .. slot_f1
  lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
  for r in rows:
    cells = [
      f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
      for c in cols
    ]
    lines.append("| " + " | ".join(cells) + " |")
  (workdir / "results.md").write_text("\n".join(lines) + "\n")
  ok = [r for r in rows if r["status"] == "ok"]
  if not ok:
    return
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  # Keys held at one value (e.g. a shorter schedule for every point) get no
  # plot of their own.
  varying = [k for k in keys if len({str(r[k]) for r in ok}) > 1]
  xs = [k for k in varying if all(isinstance(r[k], int | float) for r in ok)]
  if any(r.get("int8_bytes") for r in ok):
    xs.append("int8_bytes")
  for x in xs:
    pts = sorted(
      (r[x], r["exact_match"], ",".join(str(r[k]) for k in varying))
      for r in ok
      if r.get(x)
    )
    scale = 1e-6 if x == "int8_bytes" else 1  # Bytes shown as MB.
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([p[0] * scale for p in pts], [p[1] for p in pts], marker="o")
    ax.set_xlabel("int8 .tflite (MB)" if x == "int8_bytes" else x)
    ax.set_ylabel("exact match")
    if x == "model.projection_size":
      ax.set_xscale("log", base=2)
    if x == "int8_bytes":  # Which point is which, and the device budget.
      for bx, em, label in pts:
        ax.annotate(
          label, (bx * scale, em), textcoords="offset points", xytext=(4, -10)
        )
      ax.axvline(3.5, color="gray", ls="--", lw=1)
      ax.text(3.5, ax.get_ylim()[0], " 3.5 MB", color="gray", va="bottom")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(workdir / f"exact_match_vs_{x.replace('.', '_')}.png", dpi=110)
    plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/default.py")
  p.add_argument(
    "--sweep",
    action="append",
    default=[],
    help='key=v1,v2,... (repeat for a grid); tuple keys: key=();("a","b")',
  )
  p.add_argument("--workdir", required=True)
  p.add_argument("--split", default="test", choices=["eval", "test"])
  p.add_argument(
    "--no_export",
    action="store_true",
    help="Skip the int8 .tflite export of each point.",
  )
  p.add_argument(
    "--collect",
    action="store_true",
    help="Only gather finished points (cluster mode).",
  )
  a = p.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  if not a.sweep:
    raise SystemExit("error: give at least one --sweep key=v1,v2,...")
  base = load_config(a.config)
  grid = parse_sweeps(a.sweep, base)
  keys = list(grid[0])
  workdir = Path(a.workdir)
  (workdir / "points").mkdir(parents=True, exist_ok=True)
  rows, done_s = [], []
  for i, overrides in enumerate(grid):
    name = point_name(overrides)
    pdir = workdir / "points" / name
    result = pdir / "result.json"
    if result.exists() and json.loads(result.read_text())["status"] == "ok":
      row = json.loads(result.read_text())
      print(f"[{i + 1}/{len(grid)}] {name}: done before, skipped")
    elif a.collect:
      row = {"point": name, "status": "missing", **overrides}
    else:
      t0 = time.time()
      try:
        row = run_point(apply(base, overrides), pdir, a.split, not a.no_export)
        row["status"] = "ok"
      except Exception as e:  # A failed point is recorded, not fatal.
        row = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        (pdir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
        (pdir / "error.txt").write_text(traceback.format_exc())
      row.update(point=name, **overrides)
      result.write_text(json.dumps(row, indent=1))
      done_s.append(time.time() - t0)
      left = sum(
        1
        for o in grid[i + 1 :]
        if not _finished(workdir / "points" / point_name(o))
      )
      eta = left * sum(done_s) / len(done_s)
      print(
        f"[{i + 1}/{len(grid)}] {name}: {row['status']} "
        f"EM={row.get('exact_match', float('nan')):.4f} "
        f"in {done_s[-1]:.0f}s; ETA {eta / 60:.1f} min",
        flush=True,
      )
    rows.append(row)
  write_reports(workdir, rows, keys)
  print(f"wrote {workdir / 'results.csv'} and {workdir / 'results.md'}")


def _finished(pdir: Path) -> bool:
  f = pdir / "result.json"
  return f.exists() and json.loads(f.read_text()).get("status") == "ok"


if __name__ == "__main__":
  main()
