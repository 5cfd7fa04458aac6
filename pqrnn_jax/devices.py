"""Devices: the multi-host setup, which local devices train, and state
replicated onto them as the pmapped step lays it out."""

import logging

import flax
import jax


def init_distributed(config) -> None:
  """jax.distributed.initialize() for a multi-host run (config.distributed),
  with the coordinator, process count and id from the config when given;
  on CPU hosts collectives go through gloo. Call before any other JAX use."""
  if not config.distributed or jax.distributed.is_initialized():
    return
  kw = {}
  if config.coordinator_address:
    kw = dict(
      coordinator_address=config.coordinator_address,
      num_processes=config.num_processes,
      process_id=config.process_id,
    )
  if jax.config.jax_platforms in (None, "", "cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kw)
  logging.info(
    "process %d of %d, %d local devices of %d",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def local_devices(config):
  """This process's devices to train on (config.train.devices, 0 = all);
  raises when the global batch does not divide over every process's."""
  devices = jax.local_devices()[: config.train.devices or None]
  if config.train.batch_size % (len(devices) * jax.process_count()):
    raise ValueError(
      f"train.batch_size={config.train.batch_size} is not divisible by "
      f"{len(devices) * jax.process_count()} devices"
    )
  return devices


def pmap_devices(devices):
  """pmap's `devices`: the local ones, or None (all) for multi-host."""
  # Multi-host: pmap spans every process's devices (each feeds its own);
  # naming the local ones would keep the psums on this host.
  return devices if jax.process_count() == 1 else None


def donated_state(devices) -> tuple[int, ...]:
  """The step's `donate_argnums`: the state (argument 0) on accelerators,
  where donation halves its memory; nothing on CPU, where XLA copies each
  donated buffer before the update writes it (a tenth of an MTOP en step,
  measured: docs/RESULTS.md, "Performance")."""
  return () if devices[0].platform == "cpu" else (0,)


def replicate(tree, devices):
  """One copy of `tree` per device, laid out as the pmapped step returns
  its state: fed flax's replicate() directly, the step compiles its first
  shape twice (once per input layout), a few seconds each."""
  tree = flax.jax_utils.replicate(tree, devices)
  same = jax.pmap(lambda x: x, axis_name="batch", devices=pmap_devices(devices))
  return same(tree)
