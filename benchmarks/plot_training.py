"""Learning curves of a training run, from its TensorBoard event files.

  python benchmarks/plot_training.py --workdir runs/mtop_en \
    --out docs/mtop_en_training.png

Left: train loss and token accuracy; right: eval exact match, intent
accuracy and slot F1, per step. Also writes the curves as JSON beside the
PNG. With --compare NAME=DIR (repeatable; DIR may also be a curves JSON
this script wrote), one more plot, `<out>_compare.png`: eval exact match
of the workdir and of each other run against the step, and, for runs with
event files, against wall minutes. Runs
with a parameter average (train.ema_decay) also show the raw parameters'
exact match, dashed.
"""

import collections
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from pqrnn_jax import cli  # noqa: E402

TRAIN = ("train/loss", "train/token_accuracy")
EVAL = ("eval/exact_match", "eval/intent_accuracy", "eval/slot_f1")
RAW = "eval/raw_exact_match"  # Runs with train.ema_decay: raw parameters.

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_string("out", "training.png", "PNG written here.")
flags.DEFINE_string("label", "", "The workdir's name in --compare.")
flags.DEFINE_multi_string(
  "compare",
  [],
  "NAME=WORKDIR of another run for the exact-match comparison plot.",
)
flags.DEFINE_integer(
  "from_step",
  0,
  "The comparison plot starts at this step (late differences are small).",
)


def read_scalars(
  workdir: Path, wall=None
) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value)] from every events file in `workdir`, or from a
  curves JSON this script wrote; `wall` (a dict), when given, gets tag ->
  [(minutes since the run's first event, value)]."""
  if not workdir.exists():
    raise FileNotFoundError(f"no run at {workdir}")
  if workdir.suffix == ".json":
    return {
      k: [tuple(x) for x in v]
      for k, v in json.loads(workdir.read_text()).items()
    }
  curves = collections.defaultdict(dict)
  times = collections.defaultdict(dict)
  start = None
  for f in sorted(workdir.glob("events.out.tfevents*")):
    for e in tf.compat.v1.train.summary_iterator(str(f)):
      for v in e.summary.value:
        if v.HasField("tensor"):
          arr = tf.make_ndarray(v.tensor)
          if arr.ndim or arr.dtype.kind not in "fiu":
            continue  # Text and other non-scalar summaries.
          value = float(arr)
        else:
          value = v.simple_value
        curves[v.tag][e.step] = value  # A resumed run overwrites steps.
        start = e.wall_time if start is None else min(start, e.wall_time)
        times[v.tag][e.step] = (e.wall_time, value)
  if wall is not None and start is not None:
    for tag, d in times.items():
      wall[tag] = sorted(((t - start) / 60, v) for t, v in d.values())
  return {k: sorted(d.items()) for k, d in curves.items()}


def main(argv):
  cli.no_extra_args(argv)
  a = FLAGS
  wall = {}
  curves = read_scalars(Path(a.workdir), wall)
  if not curves:
    raise FileNotFoundError(f"no event files in {a.workdir}")
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  for tag in TRAIN:
    if tag in curves:
      steps, values = zip(*curves[tag], strict=True)
      left.plot(steps, values, label=tag)
  left.set_xlabel("step")
  left.set_title("training")
  left.legend()
  for tag in EVAL + (RAW,):
    if tag in curves:
      steps, values = zip(*curves[tag], strict=True)
      style = "--" if tag == RAW else "-"
      right.plot(steps, values, style, marker="o", label=tag)
  right.set_xlabel("step")
  right.set_title(f"eval ({Path(a.workdir).name})")
  right.set_ylim(0, 1)
  right.grid(alpha=0.3)
  right.legend(loc="lower right")
  fig.tight_layout()
  Path(a.out).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(a.out, dpi=110)
  keep = {k: v for k, v in curves.items() if k in TRAIN + EVAL + (RAW,)}
  Path(a.out).with_suffix(".json").write_text(json.dumps(keep, indent=1))
  print(f"wrote {a.out}")
  if a.compare:
    compare(a, curves, wall)


def compare(a, curves, wall):
  """Eval exact match of the main run and the --compare runs against the
  step and, for runs with event files, against wall minutes."""
  name = a.label or Path(a.workdir).name
  runs, walls = {name: curves}, {name: wall}
  for item in a.compare:
    name, sep, wd = item.partition("=")
    if not sep:
      raise ValueError(f"--compare {item!r}: expected NAME=WORKDIR")
    walls[name] = {}
    runs[name] = read_scalars(Path(wd), walls[name])
  timed = {k: w for k, w in walls.items() if "eval/exact_match" in w}
  fig, axes = plt.subplots(
    1, 2 if timed else 1, figsize=(11 if timed else 6, 4)
  )
  ax = axes[0] if timed else axes
  late = lambda points: [(s, v) for s, v in points if s >= a.from_step]
  for name, c in runs.items():
    if points := late(c.get("eval/exact_match", [])):
      steps, values = zip(*points, strict=True)
      line = ax.plot(steps, values, marker="o", label=name)[0]
      if raw := late(c.get(RAW, [])):  # The EMA run's raw parameters, dashed.
        steps, values = zip(*raw, strict=True)
        ax.plot(
          steps, values, "--", color=line.get_color(), label=f"{name} (raw)"
        )
  ax.set_xlabel("step")
  ax.set_ylabel("eval exact match")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  if timed:  # Runs with event files: the same against wall time.
    for name, w in timed.items():
      minutes, values = zip(*w["eval/exact_match"], strict=True)
      axes[1].plot(minutes, values, marker="o", label=name)
    axes[1].set_xlabel("wall minutes since the first logged step")
    axes[1].set_ylabel("eval exact match")
    axes[1].grid(alpha=0.3)
    axes[1].legend(loc="lower right")
  fig.tight_layout()
  out = Path(a.out).with_name(Path(a.out).stem + "_compare.png")
  fig.savefig(out, dpi=110)
  print(f"wrote {out}")


if __name__ == "__main__":
  cli.run(main)
