"""Int8 quantization-aware training with AQT (aqtp), for `quant="int8"`.

Every matmul of the model goes through AQT: the Dense layers (bottleneck,
QRNN gate convolutions, attention projections, FFN, symbol and pointer
heads) by `int8_dense`, and the activation x activation products (attention
logits and mixing, pointer scores) by `int8_einsum`. The forward pass
rounds both operands to int8 and multiplies them in int8 (int32
accumulation); the backward pass is float and straight-through (AQT's
custom gradient of the rounding is the identity inside the clipping range).
No stochastic rounding, so no rng stream beyond the float model's.

Ranges, and how the export relates to them (ARCHITECTURE.md section 5):
  weights:     symmetric, one scale per output channel (abs max): the same
               scheme as TFLite's per-channel int8 weights;
  activations: symmetric, one scale per tensor (abs max of the tensor
               itself, recomputed every call: no state to train or save).
TFLite's full-int8 converter uses per-tensor activation ranges too, fixed
from a representative dataset. `export.py` draws that dataset from training
utterances run through the same encode and teacher-forced decode steps, so
the calibrated ranges cover the ranges the model was trained under; the
float parameters of an AQT model are the ones exported.

Parameters are float and have the same tree as the float model's, so a
float checkpoint fine-tunes with `--config.model.quant=int8` and an AQT
checkpoint evaluates or exports with `quant="none"`.
"""

import functools

import flax.linen as nn
import jax.numpy as jnp
from aqt.jax.v2 import config as aqt_config
from aqt.jax.v2.flax import aqt_flax


def dot_general_config(per_channel_rhs: bool):
  """AQT int8 forward, float straight-through backward.

  Args:
    per_channel_rhs: the right operand is a weight matrix (one scale per
      output channel); otherwise it is an activation (one scale per tensor).
  """
  cfg = aqt_config.config_v4(fwd_bits=8, dlhs_bits=None, drhs_bits=None)
  # Gradients stay float, so stochastic rounding (and its rng) has no use.
  aqt_config.set_stochastic_rounding(cfg, False, False, "jax.uniform")
  cfg.fwd.dg_quantizer.lhs.calib_shared_axes = "per_tensor"
  if not per_channel_rhs:
    cfg.fwd.dg_quantizer.rhs.calib_shared_axes = "per_tensor"
  return cfg


def int8_dense(dtype=jnp.float32):
  """`nn.Dense` constructor whose matmul is AQT int8 (same params)."""
  dg = functools.partial(
    aqt_flax.AqtDotGeneral, dot_general_config(True), prng_name=None
  )
  return functools.partial(
    nn.Dense, dtype=dtype, param_dtype=jnp.float32, dot_general_cls=dg
  )


def int8_einsum(name=None):
  """An AQT int8 einsum module, called like `jnp.einsum(eqn, lhs, rhs)`."""
  return aqt_flax.AqtEinsum(
    dot_general_config(False), prng_name=None, name=name
  )
