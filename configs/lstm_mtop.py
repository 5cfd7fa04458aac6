"""LSTM seq2seq baseline on MTOP: `--config configs/lstm_mtop.py:en`.

  python train.py --config configs/lstm_mtop.py:en --workdir runs/lstm_en \
    [--config.model.embedding_file=glove.6B.300d.txt]

Same data, splits, targets, decoding and metrics as configs/mtop.py; the
model is lstm.LSTMSeq2Seq: a word table over the training vocabulary
(300-d, GloVe-sized, optionally initialised from a word2vec/GloVe text
file), a 256+256 BiLSTM and a 512-unit attention LSTM decoder with the same
pointer outputs. Sizes and learning rate are conventional, not tuned.
Compare with pQRNN-MAtt (parameters, bytes, exact match, examples/s,
latency):

  python benchmarks/compare_lstm.py --pqrnn runs/mtop_en --lstm runs/lstm_en

Measured (docs/RESULTS.md): 2,000 steps, 16 min on 2 CPU cores (shared),
test exact match 70.31 (pQRNN-MAtt, same steps: 73.19); 6.1 M parameters,
7.7 MB full-int8 .tflite.
"""

from configs import mtop


def get_config(lang: str = "en"):
  c = mtop.get_config(lang)
  m = c.model
  m.arch = "lstm"
  m.token_features, m.word_dropout = (), 0.0  # A word table: whole words.
  m.bottleneck = 512  # D: the decoder LSTM and its embeddings.
  m.dropout = 0.3
  c.train.learning_rate = 1e-3
  # Measured (docs/RESULTS.md) without mtop.py's session-3 additions.
  c.data.augment_ratio, c.train.ema_decay = 0.0, 0.0
  return c
