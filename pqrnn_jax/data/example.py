"""The one example type every reader yields."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Example:
  """One utterance with its parse.

  Attributes:
    id: dataset id (MTOP column 1) or "<file>:<line>" when the file has none.
    locale: e.g. "en_XX"; "" when unknown.
    domain: e.g. "alarm"; "" when unknown.
    utterance: raw text, untokenized.
    tokens: the utterance's tokens (what the model reads and copies from).
    parse: bracketed TOP-style tree, e.g. "[IN:GET_WEATHER [SL:LOCATION x ] ]".
  """

  id: str
  locale: str
  domain: str
  utterance: str
  tokens: tuple[str, ...]
  parse: str


class DataError(ValueError):
  """A malformed input row: names the file, the line and the problem."""

  def __init__(self, path, line: int, problem: str):
    self.path, self.line, self.problem = str(path), line, problem
    super().__init__(f"{path}:{line}: {problem}")
