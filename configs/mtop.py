"""pQRNN-MAtt on MTOP, one language: `--config configs/mtop.py:en`.

  python train.py --config configs/mtop.py:en --workdir runs/mtop_en

English trains on derived/en_train.utterance_decoupled.tsv (the only train
data we have), selects on en/eval.txt and tests on en/test.txt. The other
languages (de es fr hi th) have no train split here: they train on their
eval.txt and test on test.txt, a small-data check, not an MTOP result.
Data: $MTOP_DIR or ../shared/data/mtop, or --config.data.data_dir=DIR.
Expected runtime and metric: see docs/RESULTS.md (measured, with commands).
"""

from configs import default

LANGS = ("en", "de", "es", "fr", "hi", "th")


def get_config(lang: str = "en"):
  if lang not in LANGS:
    raise ValueError(f"language {lang!r}: choose one of {LANGS}")
  c = default.get_config()
  d = c.data
  d.source = "files"
  if lang == "en":
    d.train_file = "derived/en_train.utterance_decoupled.tsv"
  else:
    d.train_file = f"{lang}/eval.txt"
  d.eval_file = f"{lang}/eval.txt"
  d.test_file = f"{lang}/test.txt"
  c.train.num_steps = 20000
  c.eval_every = 2000
  c.checkpoint_every = 1000
  return c
