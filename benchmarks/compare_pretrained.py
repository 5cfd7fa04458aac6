"""Models side by side: parameters, bytes and test exact match per language.

  python benchmarks/compare_pretrained.py \
    --row "pQRNN-MAtt=runs/mtop_en:runs/mtop_en/int8.tflite" \
    --row "LSTM + USE-m3 frozen=runs/lstm_en_use:runs/lstm_en_use/int8.tflite" \
    --row "pQRNN-MAtt=runs/small90_de" ... \
    --out benchmarks/results/compare_pretrained.json

A row is NAME=WORKDIR[:TFLITE]; rows with the same NAME are one model
family measured per language (e.g. one workdir per small-data language).
Per row: parameters, float32 bytes (4 per parameter), int8 bytes (the
.tflite's size when given), and the exact match per locale from
WORKDIR/eval_test_beam1.json (`python -m pqrnn_jax.evaluate --split test`).
For a model with a pre-trained table, "paper bytes" count the whole table
(128,010 x 512 USE-m3 pieces, float32) in place of the rows the run kept:
the size of a model that embeds any word, as the paper counts an LSTM with
pre-trained embeddings.
"""

import collections
import json
from pathlib import Path

from absl import flags

from pqrnn_jax import checkpoints, cli, models, pretrained

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("row", [], "NAME=WORKDIR[:TFLITE]")
flags.DEFINE_string("out", "compare_pretrained.json", "JSON written here.")

FULL_TABLE = 128010 * pretrained.DIM


def measure(workdir: str, tflite: str = "") -> dict:
  """Sizes of one workdir's best checkpoint and its test EM per locale."""
  model_cfg, _, params, _ = checkpoints.load_for_inference(workdir)
  n = models.param_count(params)
  r = {"workdir": workdir, "params": n, "float_bytes": 4 * n}
  if tflite:
    r["int8_bytes"] = Path(tflite).stat().st_size
  if getattr(model_cfg, "pretrained", ""):
    kept = params["words"]["embedding"].size
    r["paper_params"] = n - kept + FULL_TABLE
    r["paper_float_bytes"] = 4 * r["paper_params"]
  path = Path(workdir, "eval_test_beam1.json")
  if not path.exists():
    raise SystemExit(
      f"error: no {path}: run python -m pqrnn_jax.evaluate --workdir "
      f"{workdir} --split test first"
    )
  scored = json.loads(path.read_text())
  r["exact_match"] = {
    loc[:2]: m["exact_match"] for loc, m in scored["per_locale"].items()
  }
  return r


def main(argv):
  cli.no_extra_args(argv)
  families = collections.defaultdict(list)
  for spec in FLAGS.row:
    name, _, rest = spec.partition("=")
    workdir, _, tflite = rest.partition(":")
    families[name].append(measure(workdir, tflite))
  out = {}
  for name, rows in families.items():
    em = {k: v for r in rows for k, v in r["exact_match"].items()}
    out[name] = {"rows": rows, "exact_match": em}
    if len(em) > 1:
      out[name]["average"] = sum(em.values()) / len(em)
    first = rows[0]
    print(
      f"{name}: {first['params']:,} params, "
      f"{first['float_bytes'] / 1e6:.2f} MB float, "
      + (
        f"{first['int8_bytes'] / 1e6:.2f} MB int8, "
        if "int8_bytes" in first
        else ""
      )
      + (
        f"{first['paper_float_bytes'] / 1e6:.1f} MB with the whole table, "
        if "paper_float_bytes" in first
        else ""
      )
      + " ".join(f"{k} {100 * v:.2f}" for k, v in sorted(em.items()))
      + (f"; average {100 * out[name]['average']:.2f}" if len(em) > 1 else "")
    )
  Path(FLAGS.out).write_text(json.dumps(out, indent=1) + "\n")
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
