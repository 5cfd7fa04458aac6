"""Dense matmuls with bfloat16 operands, float32 accumulation and outputs.

CPUs with AVX512-BF16 run XLA:CPU's bfloat16 x bfloat16 -> float32 dots
(its YNNPACK path) at about twice the float32 rate (measured on AMD Zen
4), while bfloat16 elementwise work and bfloat16 outputs are emulated and
slower. So `model.matmul="bfloat16"` rounds the operands of the Dense
layers' matmuls and nothing else: parameters, activations, accumulation
and every other op stay float32.

The activation x activation products (attention, pointer scores) stay
float32: their backward dots have batch dimensions, which XLA:CPU runs
outside YNNPACK, and its generic dot kernel has no bfloat16 x bfloat16 ->
float32 form.

`dot_general` has a custom gradient for the same reason as the rounding:
JAX's own transpose would multiply the float32 cotangent by the bfloat16
operand, a mixed dot that runs in float32. Here the cotangent is rounded
too, so both backward products of a matmul take the fast path.
"""

import functools
import string

import jax
import jax.numpy as jnp
from jax import lax

BF16, F32 = jnp.bfloat16, jnp.float32
MATMULS = ("auto", "float32", "bfloat16")


@functools.cache
def cpu_has_bf16_dots() -> bool:
  """Whether this host's CPU lists AVX512-BF16 or AMX-BF16 (Linux)."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = f.read()
  except OSError:
    return False
  return "avx512_bf16" in flags or "amx_bf16" in flags


def enabled(matmul: str) -> bool:
  """Whether a config's `matmul` rounds operands to bfloat16 here: "auto"
  does on CPUs with bfloat16 dots (accelerators use `dtype` instead)."""
  if matmul == "auto":
    return jax.default_backend() == "cpu" and cpu_has_bf16_dots()
  return matmul == "bfloat16"


def _einsum_specs(lhs_ndim, rhs_ndim, dimension_numbers):
  """einsum subscripts (lhs, rhs, out) of a dot_general's dimension numbers;
  out is laid out as lax.dot_general's: batch, lhs free, rhs free dims."""
  (lc, rc), (lb, rb) = dimension_numbers
  letters = iter(string.ascii_letters)
  lhs = [next(letters) for _ in range(lhs_ndim)]
  rhs = [None] * rhs_ndim
  for i, j in zip((*lc, *lb), (*rc, *rb), strict=True):
    rhs[j] = lhs[i]
  rhs = [r or next(letters) for r in rhs]
  out = (
    [lhs[i] for i in lb]
    + [x for i, x in enumerate(lhs) if i not in (*lc, *lb)]
    + [x for j, x in enumerate(rhs) if j not in (*rc, *rb)]
  )
  return "".join(lhs), "".join(rhs), "".join(out)


def _product(lhs, rhs, dimension_numbers):
  return lax.dot_general(
    lhs.astype(BF16),
    rhs.astype(BF16),
    dimension_numbers,
    preferred_element_type=F32,
  )


_dot = jax.custom_vjp(_product, nondiff_argnums=(2,))


def _dot_fwd(lhs, rhs, dimension_numbers):
  lhs, rhs = lhs.astype(BF16), rhs.astype(BF16)
  return _product(lhs, rhs, dimension_numbers), (lhs, rhs)


def _dot_bwd(dimension_numbers, residuals, g):
  lhs, rhs = residuals
  sl, sr, so = _einsum_specs(lhs.ndim, rhs.ndim, dimension_numbers)
  g = g.astype(BF16)
  mm = functools.partial(jnp.einsum, preferred_element_type=F32)
  return mm(f"{so},{sr}->{sl}", g, rhs), mm(f"{so},{sl}->{sr}", g, lhs)


_dot.defvjp(_dot_fwd, _dot_bwd)


def dot_general(lhs, rhs, dimension_numbers, precision=None, **unused):
  """lax.dot_general as nn.Dense calls it: bfloat16 operands, float32
  result, float32 gradients."""
  del precision, unused
  return _dot(lhs.astype(F32), rhs.astype(F32), dimension_numbers)
