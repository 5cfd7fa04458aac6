"""What every command line shares: absl flags, and user mistakes as one
line on stderr (exit 1) instead of a traceback.

A mistake is a missing file or checkpoint, a malformed data row, or a bad
value (FileNotFoundError, DataError, ValueError). Set PQRNN_TRACEBACK=1 to
see the full traceback of one.
"""

import contextlib
import json
import logging
import os
import platform
import sys
import warnings
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging

from pqrnn_jax.data.example import DataError

FLAGS = flags.FLAGS
USER_ERRORS = (FileNotFoundError, NotADirectoryError, DataError, ValueError)
_OURS = str(Path(__file__).resolve().parent)

flags.DEFINE_bool(
  "log_all",
  False,
  "Also show the INFO lines of libraries (orbax, clu, jax); by default only "
  "this project's lines and everyone's warnings.",
)


class _OwnLines(logging.Filter):
  """Keeps warnings and errors from anyone, INFO only from this project."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    path = str(Path(record.pathname).resolve())
    return path.startswith(_OURS) or path.endswith("train.py")


def quiet_logs() -> None:
  """Project lines only (unless --log_all): orbax writes ~200 INFO lines a
  run, TensorFlow and XLA a few at start-up."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if FLAGS.log_all:
    return
  absl_logging.get_absl_handler().addFilter(_OwnLines())
  # Restoring a checkpoint without sharding info is what inference wants.
  warnings.filterwarnings("ignore", message="Sharding info not provided")
  warnings.filterwarnings("ignore", message="Couldn't find sharding info")


def no_extra_args(argv, allowed: bool = False) -> list[str]:
  """The positional arguments; an error unless `allowed`."""
  if len(argv) > 1 and not allowed:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  return list(argv[1:])


@contextlib.contextmanager
def _native_stderr_to_null():
  """Sends file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines
  ("oneDNN custom operations are on", "All log messages before
  absl::InitializeLog()") ignore TF_CPP_MIN_LOG_LEVEL."""
  sys.stderr.flush()
  saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(null, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)


def import_tensorflow():
  """TensorFlow, imported quietly (unless --log_all) and kept off any
  accelerator: here it only reads data, writes TensorBoard events and
  converts to TFLite."""
  if FLAGS.is_parsed() and FLAGS.log_all:
    import tensorflow as tf
  else:
    with _native_stderr_to_null():
      import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")
  return tf


def _flag_error(e: Exception) -> str:
  """One line of a flag error; a config file that raised becomes the flag
  and the exception's own last line, not ml_collections' traceback."""
  lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
  if any(x.startswith("Traceback") for x in lines):
    return f"{lines[0].rstrip(':')}: {lines[-1]}"
  return lines[0] if lines else type(e).__name__


def _unknown_field(e: LookupError | AttributeError, argv) -> str:
  """`--config.model.nosuch=1`: ml_collections raises a bare KeyError or
  AttributeError holding "'nosuch'" and maybe a did-you-mean line."""
  text = e
  while isinstance(text, BaseException):  # AttributeError(KeyError(str))
    text = text.args[0] if text.args else ""
  name, _, hint = str(text).partition("\n")
  name = name.strip("'")
  keys = [a.partition("=")[0] for a in argv[1:] if a.startswith("--config.")]
  where = next((k for k in keys if name in k.split(".")), "a --config override")
  hint = f" ({hint})" if hint else ""
  return f"{where}: the config has no field {name!r}{hint}"


def _parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {_flag_error(e)} (see --helpfull)")
  except (KeyError, AttributeError) as e:
    # Raised by config_flags while it resolves an override's path.
    sys.exit(f"error: {_unknown_field(e, argv)}")


def run(main, errors=()) -> None:
  """app.run(main), with user mistakes (USER_ERRORS and `errors`) printed
  as `error: ...`."""

  def guarded(argv):
    quiet_logs()
    try:
      return main(argv)
    except USER_ERRORS + tuple(errors) as e:
      if os.environ.get("PQRNN_TRACEBACK"):
        raise
      sys.exit(f"error: {e}")

  app.run(guarded, flags_parser=_parse_flags)


def write_json(path, result) -> None:
  """Writes a benchmark's `result` as indented JSON (making the folder)
  and says where."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=1) + "\n")
  print(f"wrote {path}")


def machine() -> str:
  """What a benchmark ran on, e.g. "x86_64, AMD EPYC, 2 cpus": the CPU
  model from /proc/cpuinfo where there is one (the dev machines change
  model between days, and their speed with it)."""
  model = platform.processor()
  with contextlib.suppress(OSError):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  parts = [platform.machine(), model, f"{os.cpu_count()} cpus"]
  return ", ".join(p for p in parts if p)
