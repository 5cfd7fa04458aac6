"""Global test settings: set before jax is imported anywhere."""

import os

# Four fake CPU devices so that data-parallel code is tested without a pod.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
# Tiny models compile faster than they run: skip most XLA passes.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
