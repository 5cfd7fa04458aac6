"""Train pQRNN-MAtt: python train.py [--config configs/X.py] --workdir DIR.

Flags hold only the config and the workdir; override config values with
e.g. --config.train.batch_size=128. Rerunning the same command resumes.
"""

import os

from absl import flags, logging
from ml_collections import config_flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Before TF is imported.

from pqrnn_jax import cli  # noqa: E402  (after the environment is set)

config_flags.DEFINE_config_file(
  "config", "configs/default.py", "Training config file.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where checkpoints and logs go.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  cli.no_extra_args(argv)
  import jax

  cli.import_tensorflow()  # Quietly, before clu imports it.
  from pqrnn_jax import devices, training

  devices.init_distributed(flags.FLAGS.config)  # Before any device use.
  logging.info("JAX devices: %s", jax.devices())
  training.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  cli.run(main)
