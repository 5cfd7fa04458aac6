"""TensorFlow Datasets builder for MTOP, one config per language.

`load` prepares a language and reads a split back as `Example`s. The builder
reads MTOP's original files through `readers`, so malformed rows fail the
build with file and line instead of being dropped.
"""

import logging

import tensorflow_datasets as tfds
from etils import epath

from pqrnn_jax.data import readers
from pqrnn_jax.data.example import Example

LANGUAGES = ("en", "de", "es", "fr", "hi", "th")
SPLITS = ("train", "eval", "test")
URL = "https://dl.fbaipublicfiles.com/mtop/mtop.zip"
# English train as 2 columns (utterance, decoupled form) when the original
# 8-column en/train.txt is missing; see the data README.
EN_TRAIN_PAIRS = "derived/en_train.utterance_decoupled.tsv"

_log = logging.getLogger(__name__)

_CITATION = """\
@inproceedings{li-etal-2021-mtop,
  title = {{MTOP}: A Comprehensive Multilingual Task-Oriented Semantic
           Parsing Benchmark},
  author = {Li, Haoran and Arora, Abhinav and Chen, Shuohui and Gupta, Anchit
            and Gupta, Sonal and Mehdad, Yashar},
  booktitle = {Proceedings of EACL 2021},
  year = {2021},
}"""


def _find_files(root, lang: str) -> dict | None:
  """Returns {split: (path, format)} under `root`, or None if no eval/test."""
  for base in (root, root / "mtop"):
    found = {
      s: (base / lang / f"{s}.txt", "mtop")
      for s in SPLITS
      if (base / lang / f"{s}.txt").exists()
    }
    if not found:
      continue
    if lang == "en" and "train" not in found:
      for top in (root, base):
        if (top / EN_TRAIN_PAIRS).exists():
          found["train"] = (top / EN_TRAIN_PAIRS, "pairs")
          break
    missing = {"eval", "test"} - set(found)
    if missing:
      raise ValueError(
        f"{base / lang} has {sorted(found)} but lacks {sorted(missing)}"
      )
    return found
  return None


class Mtop(tfds.core.GeneratorBasedBuilder):
  """MTOP task-oriented semantic parsing: utterance -> decoupled parse."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "MTOP v2 files (with ids), decoupled form."}
  BUILDER_CONFIGS = [
    tfds.core.BuilderConfig(name=lang, description=f"MTOP, {lang} only.")
    for lang in LANGUAGES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Optional: without manual files the builder downloads {URL}.
Otherwise put MTOP's original files in manual_dir, one folder per language:
  <manual_dir>/<lang>/train.txt, eval.txt, test.txt   (lang in {LANGUAGES})
(an extracted mtop.zip, i.e. <manual_dir>/mtop/<lang>/..., works too).
Files are the 8-column TSVs of the release; eval.txt and test.txt are needed,
a missing train.txt just leaves out the train split. For English, a missing
en/train.txt is replaced by <manual_dir>/{EN_TRAIN_PAIRS}
(utterance<TAB>decoupled form) if present; its tokens come from
pqrnn_jax.data.tokenizer and its id and domain are not known.
"""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file; tfds' own lookup needs the absent importlib_resources."""
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    """Features shared by every language."""
    return tfds.core.DatasetInfo(
      builder=self,
      description="MTOP: utterances with decoupled TOP-style parses.",
      features=tfds.features.FeaturesDict(
        {
          "id": tfds.features.Text(),
          "locale": tfds.features.Text(),
          "domain": tfds.features.Text(),
          "utterance": tfds.features.Text(),
          "tokens": tfds.features.Sequence(tfds.features.Text()),
          "parse": tfds.features.Text(),
        }
      ),
      supervised_keys=("utterance", "parse"),
      # Keep file order, so `load` returns rows as the readers do.
      disable_shuffling=True,
      homepage="https://arxiv.org/abs/2008.09335",
      citation=_CITATION,
      license="CC BY-SA 4.0",
    )

  def _split_generators(self, dl_manager):
    """Uses manual files for this language if there, else the release."""
    lang = self.builder_config.name
    try:
      manual = dl_manager.manual_dir
    except AssertionError:  # No manual dir, or an empty one.
      manual = None
    files = _find_files(manual, lang) if manual is not None else None
    if files is None:
      extracted = dl_manager.download_and_extract(URL)
      files = _find_files(extracted, lang)
      if files is None:
        raise ValueError(f"{URL} has no {lang}/eval.txt and {lang}/test.txt")
    if "train" not in files:
      _log.warning("MTOP %s: no train file, building eval and test only", lang)
    return {
      split: self._generate_examples(path, fmt)
      for split, (path, fmt) in files.items()
    }

  def _generate_examples(self, path, fmt: str):
    """Yields (index, features) for every row of one file."""
    if fmt == "pairs":
      locale = f"{self.builder_config.name}_XX"
      examples = readers.read_pairs(path, locale=locale)
    else:
      examples = readers.read_mtop(path)
    for i, ex in enumerate(examples):
      yield (
        i,
        {
          "id": ex.id,
          "locale": ex.locale,
          "domain": ex.domain,
          "utterance": ex.utterance,
          "tokens": list(ex.tokens),
          "parse": ex.parse,
        },
      )


def load(
  lang: str, split: str, manual_dir=None, data_dir=None
) -> list[Example]:
  """Prepares MTOP for `lang` if needed and returns one split as Examples."""
  builder = Mtop(config=lang, data_dir=data_dir)
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  text = lambda b: b.decode("utf-8")
  return [
    Example(
      id=text(r["id"]),
      locale=text(r["locale"]),
      domain=text(r["domain"]),
      utterance=text(r["utterance"]),
      tokens=tuple(text(t) for t in r["tokens"]),
      parse=text(r["parse"]),
    )
    for r in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
  ]
