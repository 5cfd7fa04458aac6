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

import ast
import csv
import itertools
import json
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


def parse_sweeps(specs, config) -> list[dict]:
  """["a.b=1,2", "c=x"] -> grid of {key: typed value} (checked keys)."""
  axes = []
  for spec in specs:
    key, sep, values = spec.partition("=")
    if not sep or not values:
      raise ValueError(f"--sweep {spec!r}: expected key=v1,v2,...")
    node = config
    *parents, leaf = key.split(".")
    try:
      for p in parents:
        node = node[p]
      current = node[leaf]
    except KeyError:
      raise ValueError(f"--sweep {spec!r}: no config key {key}") from None
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
    raise ValueError(
      f"--sweep {spec!r}: {text!r} is not a Python literal"
    ) from None
  if not isinstance(value, tuple | list):
    raise ValueError(f"--sweep {spec!r}: {text!r} is not a tuple")
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
  from pqrnn_jax import evaluate, inference, input_pipeline, models, training
  from pqrnn_jax import export as export_lib

  t0 = time.time()
  training.train_and_evaluate(config, point_dir)
  parser = inference.Parser.from_workdir(point_dir)
  examples = input_pipeline.load_split(parser.config.data, split)
  m = evaluate.evaluate_examples(parser, examples)["metrics"]
  row = {k: m[k] for k in FIELDS if k in m}
  row["params"] = models.param_count(parser.params)
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


def _run_one(config, grid, i, workdir: Path, split, export, done_s):
  """Trains point i of the grid; its result row (also in result.json)."""
  overrides = grid[i]
  name = point_name(overrides)
  pdir = workdir / "points" / name
  t0 = time.time()
  try:
    row = run_point(apply(config, overrides), pdir, split, export)
    row["status"] = "ok"
  except Exception as e:  # A failed point is recorded, not fatal.
    row = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "error.txt").write_text(traceback.format_exc())
  row.update(point=name, **overrides)
  (pdir / "result.json").write_text(json.dumps(row, indent=1))
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
  return row


def run_sweep(
  config, specs, workdir, *, split="test", export=True, collect=False
) -> list[dict]:
  """Every point of the grid `specs` (["key=v1,v2", ...]) over `config`:
  trained, evaluated, exported (or, with `collect`, only gathered); writes
  the reports and returns the rows."""
  if not specs:
    raise ValueError("give at least one --sweep key=v1,v2,...")
  grid = parse_sweeps(specs, config)
  workdir = Path(workdir)
  (workdir / "points").mkdir(parents=True, exist_ok=True)
  rows, done_s = [], []
  for i, overrides in enumerate(grid):
    name = point_name(overrides)
    result = workdir / "points" / name / "result.json"
    if _finished(workdir / "points" / name):
      row = json.loads(result.read_text())
      print(f"[{i + 1}/{len(grid)}] {name}: done before, skipped")
    elif collect:
      row = {"point": name, "status": "missing", **overrides}
    else:
      row = _run_one(config, grid, i, workdir, split, export, done_s)
    rows.append(row)
  write_reports(workdir, rows, list(grid[0]))
  print(f"wrote {workdir / 'results.csv'} and {workdir / 'results.md'}")
  return rows


def main(argv):
  from pqrnn_jax import cli

  f = cli.FLAGS
  cli.no_extra_args(argv)
  run_sweep(
    f.config,
    f.sweep,
    f.workdir,
    split=f.split,
    export=not f.no_export,
    collect=f.collect,
  )


def _finished(pdir: Path) -> bool:
  f = pdir / "result.json"
  return f.exists() and json.loads(f.read_text()).get("status") == "ok"


if __name__ == "__main__":
  from absl import flags
  from ml_collections import config_flags

  from pqrnn_jax import cli

  config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Base config file (path[:arg])."
  )
  flags.DEFINE_multi_string(
    "sweep",
    [],
    'key=v1,v2,... (repeat for a grid); tuple keys: key=();("a","b")',
  )
  flags.DEFINE_string("workdir", None, "Sweep directory.", required=True)
  flags.DEFINE_enum("split", "test", ["eval", "test"], "Split scored.")
  flags.DEFINE_bool("no_export", False, "Skip the int8 .tflite of each point.")
  flags.DEFINE_bool("collect", False, "Only gather finished points.")
  cli.run(main)
