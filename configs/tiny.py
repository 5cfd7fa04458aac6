"""Tiny config for tests and CI: seconds on one CPU core.

  python train.py --config configs/tiny.py --workdir /tmp/pqrnn_tiny

Not a useful model: it checks that every piece runs end to end.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.data.synthetic_sizes = (64, 16, 16)
  m = c.model
  m.projection_size, m.bottleneck, m.qrnn_hidden = 32, 16, 8
  m.qrnn_layers, m.decoder_layers, m.heads, m.ffn = 1, 1, 2, 32
  m.max_source_len, m.max_target_len = 24, 32
  # The same trained numbers on every CPU: tests hold them to fixed bounds.
  m.matmul = "float32"
  c.data.skip_unusable = True  # U = 32 cuts a few of the longest parses.
  c.train.batch_size = 8
  c.train.num_steps = 6
  c.train.warmup_steps = 2
  c.train.buckets = 1
  c.log_every = 2
  c.eval_every = 6
  c.checkpoint_every = 3
  c.eval_batch_size = 16
  return c
