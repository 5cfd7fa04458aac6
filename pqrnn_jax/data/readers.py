"""Readers for TOP-style files; each returns `Examples` of `Example`s.

Formats:
  mtop:  MTOP's original 8 tab-separated columns, no header
         (id, intent, slots, utterance, domain, locale, parse, tokens JSON).
  pairs: `utterance<TAB>parse`, no header.
  top:   the original TOP release (Gupta et al. 2018): `raw utterance<TAB>
         tokenized utterance<TAB>tree`, no header; tokens are column 2.
  table: tab-separated with a header line naming the columns (e.g. TOPv2's
         `domain<TAB>utterance<TAB>semantic_parse`).

A malformed row raises `DataError` naming the file and 1-based line. With
`skip_bad=True` it is skipped instead, logged, and counted in the result's
`.skipped` / `.problems`, so nothing is dropped silently.
"""

import json
import logging
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

from pqrnn_jax import targets
from pqrnn_jax.data.example import DataError, Example
from pqrnn_jax.data.tokenizer import tokenize

FORMATS = ("auto", "mtop", "pairs", "table", "top", "xsemplr")
MAX_PROBLEMS = 10  # Kept verbatim in `Examples.problems`; the rest are counted.

# Header name -> field, for `read_table`.
COLUMN_ALIASES = {
  "utterance": "utterance",
  "text": "utterance",
  "source": "utterance",
  "question": "utterance",
  "parse": "parse",
  "semantic_parse": "parse",
  "decoupled": "parse",
  "target": "parse",
  "logical_form": "parse",
  "tokens": "tokens",
  "id": "id",
  "locale": "locale",
  "domain": "domain",
}

_log = logging.getLogger(__name__)
_BOM = b"\xef\xbb\xbf"


class Examples(list):
  """A list of `Example`s that also reports the rows skipped as malformed."""

  def __init__(self, items=(), skipped: int = 0, problems=()):
    super().__init__(items)
    self.skipped = skipped
    self.problems = list(problems)


def check_parse(parse: str) -> str | None:
  """What is wrong with a bracketed parse (targets.read_tree), or None."""
  if not parse.strip():
    return "empty parse"
  return targets.tree_problem(parse)


def _as_path(path) -> Any:
  """Keeps path-like objects with `read_bytes` (e.g. epath), else pathlib."""
  return path if hasattr(path, "read_bytes") else pathlib.Path(path)


def _lines(path) -> Iterator[tuple[int, str | None, str]]:
  """Yields (1-based line number, text or None if undecodable, problem)."""
  data = path.read_bytes()
  if data.startswith(_BOM):
    data = data[len(_BOM) :]
  raw = data.split(b"\n")
  # Only empty lines at the very end are allowed (a final newline or a few).
  while raw and not raw[-1].strip(b"\r"):
    raw.pop()
  for i, line in enumerate(raw, start=1):
    line = line.removesuffix(b"\r")
    try:
      yield i, line.decode("utf-8"), ""
    except UnicodeDecodeError as e:
      yield i, None, f"not valid UTF-8 ({e.reason} at byte {e.start})"


def _read(
  path, parse_row: Callable[[int, str], Example], skip_bad: bool, first: int = 1
) -> Examples:
  """Applies `parse_row` to every line from `first` on; handles bad rows."""
  out = Examples()
  for lineno, text, problem in _lines(path):
    if lineno < first:
      continue
    try:
      if text is None:
        raise DataError(path, lineno, problem)
      if not text.strip():
        raise DataError(path, lineno, "empty line")
      out.append(parse_row(lineno, text))
    except DataError as e:
      if not skip_bad:
        raise
      out.skipped += 1
      if len(out.problems) < MAX_PROBLEMS:
        out.problems.append(str(e))
  if out.skipped:
    _log.warning(
      "%s: skipped %d malformed row(s); first: %s",
      path,
      out.skipped,
      out.problems[0],
    )
  return out


def _fields(path, lineno: int, text: str, n: int) -> list[str]:
  """Splits a row on tabs and checks the field count."""
  fields = text.split("\t")
  if len(fields) != n:
    raise DataError(
      path, lineno, f"expected {n} tab-separated fields, got {len(fields)}"
    )
  return fields


def _check_text(path, lineno: int, utterance: str, parse: str) -> None:
  """Raises DataError for an empty utterance or a malformed parse."""
  if not utterance.strip():
    raise DataError(path, lineno, "empty utterance")
  problem = check_parse(parse)
  if problem:
    raise DataError(path, lineno, problem)


def _mtop_tokens(path, lineno: int, utterance: str, blob: str) -> list[str]:
  """Parses and checks column 8 (tokens plus UTF-8 byte spans)."""
  try:
    obj = json.loads(blob)
  except json.JSONDecodeError as e:
    raise DataError(path, lineno, f"column 8 is not valid JSON: {e}") from None
  tokens = obj.get("tokens") if isinstance(obj, dict) else None
  if (
    not isinstance(tokens, list)
    or not tokens
    or not all(isinstance(t, str) and t for t in tokens)
  ):
    raise DataError(
      path, lineno, 'column 8 has no "tokens" list of non-empty strings'
    )
  spans = obj.get("tokenSpans")
  if spans is None:
    return tokens
  if not isinstance(spans, list) or len(spans) != len(tokens):
    raise DataError(
      path,
      lineno,
      f"column 8 has {len(tokens)} tokens but tokenSpans "
      f"is not a list of {len(tokens)} spans",
    )
  data = utterance.encode("utf-8")
  for k, (token, span) in enumerate(zip(tokens, spans, strict=True)):
    try:
      start, length = span["start"], span["length"]
      ok = (
        isinstance(start, int)
        and isinstance(length, int)
        and 0 <= start
        and start + length <= len(data)
        and data[start : start + length].decode("utf-8") == token
      )
    except (TypeError, KeyError, UnicodeDecodeError):
      ok = False
    if not ok:
      raise DataError(
        path,
        lineno,
        f"token {k} {token!r} does not match its UTF-8 byte "
        f"span {span!r} in the utterance",
      )
  return tokens


def read_mtop(path, *, skip_bad: bool = False) -> Examples:
  """Reads MTOP's original 8-column format; tokens come from column 8."""
  path = _as_path(path)

  def row(lineno: int, text: str) -> Example:
    ex_id, _, _, utterance, domain, locale, parse, blob = _fields(
      path, lineno, text, 8
    )
    _check_text(path, lineno, utterance, parse)
    tokens = _mtop_tokens(path, lineno, utterance, blob)
    return Example(ex_id, locale, domain, utterance, tuple(tokens), parse)

  return _read(path, row, skip_bad)


def read_pairs(path, *, locale: str = "", skip_bad: bool = False) -> Examples:
  """Reads `utterance<TAB>parse` rows; tokens come from `tokenize`."""
  path = _as_path(path)

  def row(lineno: int, text: str) -> Example:
    utterance, parse = _fields(path, lineno, text, 2)
    _check_text(path, lineno, utterance, parse)
    tokens = tokenize(utterance, locale=locale)
    return Example(
      f"{path.name}:{lineno}", locale, "", utterance, tuple(tokens), parse
    )

  return _read(path, row, skip_bad)


def read_top(path, *, locale: str = "", skip_bad: bool = False) -> Examples:
  """Reads TOP's 3 columns; the tokenized column gives the tokens, as
  MTOP's column 8 does."""
  path = _as_path(path)

  def row(lineno: int, text: str) -> Example:
    utterance, tokenized, parse = _fields(path, lineno, text, 3)
    _check_text(path, lineno, utterance, parse)
    tokens = tuple(tokenized.split())
    if not tokens:
      raise DataError(path, lineno, "empty tokenized utterance (column 2)")
    return Example(
      f"{path.name}:{lineno}", locale, "", utterance, tokens, parse
    )

  return _read(path, row, skip_bad)


def _header(path) -> dict[str, int]:
  """Maps field name -> column index from a table's first line."""
  for lineno, text, problem in _lines(path):
    if text is None:
      raise DataError(path, lineno, problem)
    names = [n.strip().lower() for n in text.split("\t")]
    break
  else:
    raise DataError(path, 1, "empty file: expected a header line")
  columns = {}
  for i, name in enumerate(names):
    field = COLUMN_ALIASES.get(name)
    if field is None:
      continue
    if field in columns:
      raise DataError(path, 1, f"header names the {field} column twice")
    columns[field] = i
  for field in ("utterance", "parse"):
    if field not in columns:
      aliases = "|".join(k for k, v in COLUMN_ALIASES.items() if v == field)
      raise DataError(
        path, 1, f"header has no {field} column ({aliases}): {names}"
      )
  columns["_n"] = len(names)
  return columns


def read_table(path, *, locale: str = "", skip_bad: bool = False) -> Examples:
  """Reads a TSV whose first line names the columns (aliases accepted)."""
  path = _as_path(path)
  columns = _header(path)

  def row(lineno: int, text: str) -> Example:
    fields = _fields(path, lineno, text, columns["_n"])
    get = lambda k, default="": fields[columns[k]] if k in columns else default
    utterance, parse = get("utterance"), get("parse")
    _check_text(path, lineno, utterance, parse)
    row_locale = get("locale", locale)
    tokens = get("tokens").split() or tokenize(utterance, locale=row_locale)
    return Example(
      get("id") or f"{path.name}:{lineno}",
      row_locale,
      get("domain"),
      utterance,
      tuple(tokens),
      parse,
    )

  return _read(path, row, skip_bad, first=2)


def read_xsemplr(path, *, skip_bad: bool = False, locale: str = "") -> Examples:
  """Reads XSemPLR's MTOP JSON: a list of {"id", "question": {lang: tokens
  joined by spaces}, "mr": {"slot_intent": {lang: parse}}}; one example per
  utterance and language, locale "<lang>_XX" (all languages, or only
  `locale`'s). Tokens are the file's own (split on spaces)."""
  path = _as_path(path)
  try:
    rows = json.loads(path.read_text(encoding="utf-8"))
    items = [
      (r["id"], lang, q, r["mr"]["slot_intent"][lang])
      for r in rows
      for lang, q in r["question"].items()
      if not locale or locale.startswith(lang)
    ]
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise DataError(path, 1, f"not XSemPLR MTOP JSON: {e!r}") from None
  out, problems = [], []
  for i, (rid, lang, q, parse) in enumerate(items, 1):
    problem = check_parse(parse)
    if problem and not skip_bad:
      raise DataError(path, i, f"{rid}/{lang}: {problem}")
    if problem:
      problems.append(f"{rid}/{lang}: {problem}")
      continue
    ex = Example(rid, f"{lang}_XX", "", q, tuple(q.split()), parse)
    out.append(ex)
  return Examples(out, len(problems), problems[:MAX_PROBLEMS])


def detect_format(path) -> str:
  """Guesses "mtop", "table", "top" or "pairs" from a file's first line
  ("xsemplr" from a .json name)."""
  path = _as_path(path)
  if path.suffix == ".json":
    return "xsemplr"
  for lineno, text, problem in _lines(path):
    if text is None:
      raise DataError(path, lineno, problem)
    fields = text.split("\t")
    if all(f.strip().lower() in COLUMN_ALIASES for f in fields):
      return "table"
    if len(fields) == 8:
      return "mtop"
    if len(fields) == 2:
      return "pairs"
    if len(fields) == 3:
      return "top"
    raise DataError(
      path,
      lineno,
      f"cannot tell the format from {len(fields)} fields: expected 8 "
      "(mtop), 3 (top), 2 (pairs) or a header of known column names",
    )
  return "pairs"  # An empty file reads as no examples in any format.


def read_examples(
  path: str | os.PathLike,
  *,
  format: str = "auto",
  skip_bad: bool = False,
  **kw,
) -> Examples:
  """Reads any supported format; "auto" looks at the first line.

  Args:
    path: the file.
    format: one of FORMATS.
    skip_bad: skip (and count) malformed rows instead of raising DataError.
    **kw: passed to the reader; `locale` is the default for rows that carry
      none and is ignored for MTOP files, which always carry one.
  """
  if format not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
  if format == "auto":
    format = detect_format(path)
  if format == "mtop":
    kw.pop("locale", None)
  reader = {
    "mtop": read_mtop,
    "pairs": read_pairs,
    "table": read_table,
    "top": read_top,
    "xsemplr": read_xsemplr,
  }
  return reader[format](path, skip_bad=skip_bad, **kw)
