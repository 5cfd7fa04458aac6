"""One file's one-call parse against its own host loop, on MTOP.

  python benchmarks/same_file_parity.py --tflite int8_all.tflite \
    --split eval --out benchmarks/results/same_file_parity.json

For each file exported with `--signatures all` (`parse_<t>` beside
`encode_<t>` + `decode_step`): the exact match of the one-call greedy
parse, of the host loop's greedy parse and of its beam search
(`--beams`), and on how many utterances the one-call and host-loop greedy
parses are the same string. Prints one line per file and writes JSON.
"""

import json
from pathlib import Path

from absl import flags

from pqrnn_jax import cli, input_pipeline, metrics, tflite_runner
from pqrnn_jax.data import readers

FLAGS = flags.FLAGS
flags.DEFINE_list("tflite", [], "Files with parse_<t> and decode_step.")
flags.DEFINE_enum("split", "eval", ["eval", "test"], "MTOP en split.")
flags.DEFINE_list("beams", ["4"], "Host-loop beam sizes to score too.")
flags.DEFINE_string("out", None, "JSON to write.")


def parity(path, examples, beams) -> dict:
  """EMs and the one-call/host-loop agreement of one file."""
  graph = tflite_runner.TFLiteParser(path)
  host = tflite_runner.TFLiteParser(path, host_loop=True)
  if not graph.parse_buckets or not host.has_steps:
    raise ValueError(
      f"{path}: needs parse_<t> and decode_step (--signatures all)"
    )
  gold = [e.parse for e in examples]
  one = [graph.parse_tokens(e.tokens) for e in examples]
  loop = [host.parse_tokens(e.tokens) for e in examples]
  row = {
    "path": str(path),
    "bytes": Path(path).stat().st_size,
    "n": len(examples),
    "one_call_em": metrics.exact_match(one, gold),
    "host_loop_em": metrics.exact_match(loop, gold),
    "same": sum(a == b for a, b in zip(one, loop, strict=True)),
  }
  row["agreement"] = row["same"] / len(examples)
  for k in beams:
    parses = [host.parse_tokens(e.tokens, beam=k) for e in examples]
    row[f"host_loop_beam{k}_em"] = metrics.exact_match(parses, gold)
  return row


def main(argv):
  cli.no_extra_args(argv)
  if not FLAGS.tflite:
    raise ValueError("--tflite: one or more .tflite files")
  path = input_pipeline.default_mtop_dir() / f"en/{FLAGS.split}.txt"
  examples = readers.read_examples(path)
  rows = []
  for f in FLAGS.tflite:
    rows.append(parity(f, examples, [int(b) for b in FLAGS.beams]))
    print(json.dumps(rows[-1]), flush=True)
  if FLAGS.out:
    out = {"split": FLAGS.split, "machine": cli.machine(), "files": rows}
    cli.write_json(FLAGS.out, out)


if __name__ == "__main__":
  cli.run(main)
