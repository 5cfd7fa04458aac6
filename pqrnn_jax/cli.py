"""What every command line shares: absl flags, and user mistakes as one
line on stderr (exit 1) instead of a traceback.

A mistake is a missing file or checkpoint, a malformed data row, or a bad
value (FileNotFoundError, DataError, ValueError). Set PQRNN_TRACEBACK=1 to
see the full traceback of one.
"""

import os
import sys

from absl import app, flags

from pqrnn_jax.data.example import DataError

FLAGS = flags.FLAGS
USER_ERRORS = (FileNotFoundError, NotADirectoryError, DataError, ValueError)


def no_extra_args(argv, allowed: bool = False) -> list[str]:
  """The positional arguments; an error unless `allowed`."""
  if len(argv) > 1 and not allowed:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  return list(argv[1:])


def run(main, errors=()) -> None:
  """app.run(main), with user mistakes (USER_ERRORS and `errors`) printed
  as `error: ...`."""

  def guarded(argv):
    try:
      return main(argv)
    except USER_ERRORS + tuple(errors) as e:
      if os.environ.get("PQRNN_TRACEBACK"):
        raise
      sys.exit(f"error: {e}")

  app.run(guarded)
