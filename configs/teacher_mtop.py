"""A wider pQRNN-MAtt to serve as a distillation teacher on MTOP.

  python train.py --config configs/teacher_mtop.py:en --workdir runs/teacher_en

`:<lang>+use` adds USE multilingual v3's pre-trained word vectors (frozen,
pretrained.py) to the input: `:all+use` is the multilingual teacher.

About 15.7 M parameters, 5.6x the default (not meant for device).
Runtime on 2 CPU cores: several hours; on one GPU, minutes. Not measured.

The measured teacher is the default size with the table, one model for six
languages (docs/RESULTS.md, "Distillation"; 29 min on 2 CPU cores with
packed rows, 34 with the 3 length buckets its test numbers come from: add
--config.train.packing=False to repeat those):

  python train.py --config configs/mtop.py:all \
      --config.model.pretrained=use-m3 --config.model.matmul=float32 \
      --workdir runs/mtop_all_use

(float32 matmuls: with bfloat16 operands, the CPU default, it ran in 19
min but its held-out eval fell 0.015 short of float32's, one run each.)
"""

from configs import mtop


def get_config(arg: str = "en"):
  lang, _, table = arg.partition("+")
  if table not in ("", "use"):
    raise ValueError(f"{arg!r}: the table after '+' can only be 'use'")
  # English: the 12k-step recipe with length buckets its numbers were
  # measured with (docs/RESULTS.md).
  c = mtop.get_config("en_12k" if lang == "en" else lang)
  m = c.model
  m.pretrained = "use-m3" if table else ""
  if table:  # The table's model learned less with bfloat16 operands.
    m.matmul = "float32"
  m.projection_size, m.bottleneck, m.qrnn_hidden = 1024, 512, 256
  m.qrnn_layers, m.decoder_layers, m.ffn = 3, 3, 1024
  m.dropout = 0.2
  c.train.learning_rate = 1e-3
  return c
