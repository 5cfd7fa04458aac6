"""What to train on: read, augment, teacher-label, ontology, encode.

`training_data` is the one place that decides which examples a run trains
on; it returns the ontology and plain arrays (input_pipeline.Encoded), and
the training loop only batches them.
"""

from pqrnn_jax import augment, distill, input_pipeline
from pqrnn_jax import targets as targets_lib

# More unusable rows than this is an error: it usually means a wrong
# tokenizer, form or length limit, not a few odd rows.
MAX_DROP_FRACTION = 0.01


def training_examples(config, workdir):
  """Gold train examples, plus teacher-labelled ones (distill.sequence_*)
  and slot-substituted copies of the gold ones (data.augment_ratio)."""
  train = input_pipeline.load_split(config.data, "train")
  substituted = []
  if config.data.augment_ratio:
    substituted = augment.augment(train, config.data.augment_ratio, config.seed)
  extra = distill.sequence_examples(config.distill, workdir, train)
  if extra:
    train = distill.mix(
      train, extra, config.distill.sequence_ratio, config.seed
    )
  return list(train) + substituted


def training_data(config, workdir, ontology=None):
  """(ontology, Encoded): the ontology is built from the training examples
  unless given (a resumed run's, or a KD teacher's)."""
  train = training_examples(config, workdir)
  if ontology is None:
    ontology = targets_lib.Ontology.build(e.parse for e in train)
  m = config.model
  enc = input_pipeline.encode(
    train,
    ontology,
    m.max_source_len,
    m.max_target_len,
    tuple(m.token_features),
  )
  if not config.data.skip_unusable:
    enc.check_drops(len(train), MAX_DROP_FRACTION, "training data")
  if m.get("pretrained"):
    # A pre-trained table covers words never seen in training, as a GloVe
    # file would: its vocabulary takes the eval and test utterances' words
    # too (their text only; their parses are never read here).
    enc.unlabelled_tokens = [
      e.tokens
      for split in ("eval", "test")
      for e in input_pipeline.load_split(config.data, split)
    ]
  return ontology, enc
