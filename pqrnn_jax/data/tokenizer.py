"""Raw-text tokenizer that reproduces MTOP's own tokenization (column 8).

MTOP's tokens behave like Unicode word segmentation (UAX #29, as in ICU's
word break iterator) followed by a few splits:

* A word is a run of letters, digits and marks; "'", "’", "‘" and "." join two
  letters ("don't", "p.m", "U.S.A", "CNN.com"); ".", ",", ";", "'" and the
  curly apostrophes join two digits ("92.1", "1,5"); letters and digits join
  directly ("13th", "6LACK"). Every other non-space character is a token of
  its own, so "8:30" -> "8", ":", "30", "get-together" -> "get", "-",
  "together", "p.m." -> "p.m", ".".
* English possessive / "is" clitic: "What's" -> "What", "'s".
* Clock suffix: "5pm" -> "5", "pm" (but "1.30pm", "1hour" stay whole).
* French elision: "l'appel" -> "l'", "appel" for l, d, s, j, m, t and qu
  (MTOP keeps "c'est", "n'ai", "aujourd'hui", "quelqu'un" whole).
* Spanish (locale "es..."): the handful of verb + clitic and "video" compounds
  that MTOP splits ("Recuérdame" -> "Recuérda", "me").

URLs and e-mail addresses (absent from MTOP) are kept as one token each, so a
pointer decoder can copy them in one step. Thai is written without spaces: a
run of Thai script is cut by ICU's dictionary word break (PyICU, extra
`thai`), which is how MTOP's Thai tokens were made (95 % of th test rows
agree whole, docs/RESULTS.md). Without PyICU a Thai run stays one token,
with one warning.
"""

import functools
import importlib.util
import itertools
import re
import unicodedata
import warnings

# Unicode WB MidNumLet / MidNum subsets that occur in practice.
_JOIN_LETTERS = frozenset("'’‘.\u2024\ufe52\uff07\uff0e")
_JOIN_DIGITS = frozenset("'’‘.,;\u2024\ufe52\uff07\uff0e\u066c\u060c")

_URL_OR_EMAIL = re.compile(
  r"(?:https?://|www\.)[^\s]+[^\s.,;:!?)\]\"'»”]"
  r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)
_CLOCK = re.compile(r"(\d+)([ap]m)", re.IGNORECASE)
_S_CLITIC = re.compile(r"(.*[^\W\d_])(['’][sS])")
_ELISION = re.compile(r"([lLdDsSjJmMtT]|[qQ][uU])(['’])(\w.*)")
# A token this tokenizer itself makes that a split on symbols would break
# again: an elided article standing alone, as in already-tokenized text
# ("l' appel"). Not a standalone clitic: MTOP splits "Vanessa 's" into
# "'", "s" (24 of 4,386 en test rows), though "Vanessa's" gives "'s".
_OWN_TOKEN = re.compile(r"(?:[lLdDsSjJmMtT]|[qQ][uU])['’]")

# Word -> split point. MTOP's Spanish eval/test files split exactly these
# words (any case) and keep every other verb + clitic ("Dame", "Envíale")
# whole; the train file may split a few more.
_ES_SPLITS = {
  "recuérdame": 8,
  "muéstrame": 7,
  "acuérdame": 7,
  "alértame": 6,
  "pregúntale": 8,
  "dime": 2,
  "léeme": 3,
  "hazme": 3,
  "mostrarme": 7,
  "recordarme": 8,
  "preguntarle": 9,
  "preguntarles": 9,
  "videollamada": 5,
  "videomensaje": 5,
  "videomensajes": 5,
}


_THAI = re.compile(r"[\u0e00-\u0e7f]+")


def thai_segmentation() -> bool:
  """Whether Thai runs are cut into words (PyICU is installed)."""
  return importlib.util.find_spec("icu") is not None


@functools.cache
def _thai_breaker():
  """ICU's Thai word break iterator, or None (with a warning) without
  PyICU."""
  try:
    import icu
  except ImportError:
    warnings.warn(
      "Thai text is not segmented without PyICU: pip install "
      "'pqrnn_jax[thai]' (each Thai run stays one token)",
      stacklevel=4,
    )
    return None
  return icu.BreakIterator.createWordInstance(icu.Locale("th"))


def _thai_words(run: str) -> list[str]:
  """Cuts a run of Thai script into words (ICU dictionary break)."""
  breaker = _thai_breaker()
  if breaker is None:
    return [run]
  breaker.setText(run)
  # ICU counts UTF-16 units; Thai is in the BMP, so they are code points.
  cuts = [0, *breaker]
  return [run[a:b] for a, b in itertools.pairwise(cuts) if a < b]


def _kind(ch: str) -> str:
  """Classifies a character: "L" letter or mark, "N" digit, "S" other."""
  cat = unicodedata.category(ch)
  if cat[0] in "LM" or ch == "_":
    return "L"
  if cat[0] == "N":
    return "N"
  return "S"


def _words(text: str) -> list[str]:
  """Splits a whitespace-free chunk into UAX #29-style words and symbols."""
  out = []
  i, n = 0, len(text)
  kinds = [_kind(c) for c in text]
  while i < n:
    if kinds[i] == "S":
      out.append(text[i])
      i += 1
      continue
    j = i + 1
    while j < n:
      if kinds[j] != "S":
        j += 1
      elif (
        j + 1 < n
        and kinds[j - 1] == kinds[j + 1]
        and text[j] in (_JOIN_LETTERS if kinds[j + 1] == "L" else _JOIN_DIGITS)
      ):
        j += 2
      else:
        break
    out.append(text[i:j])
    i = j
  return out


def _split_word(word: str, spanish: bool) -> list[str]:
  """Applies MTOP's clitic, elision and clock-suffix splits to one word."""
  if spanish:
    cut = _ES_SPLITS.get(word.lower())
    if cut:
      return [word[:cut], word[cut:]]
  m = _ELISION.fullmatch(word)
  if m:
    return [m.group(1) + m.group(2), *_split_word(m.group(3), spanish)]
  m = _S_CLITIC.fullmatch(word)
  if m:  # The stem may split again ("8AM's" -> "8", "AM", "'s").
    return [*_split_word(m.group(1), spanish), m.group(2)]
  m = _CLOCK.fullmatch(word)
  if m:
    return [m.group(1), m.group(2)]
  return [word]


def tokenize(text: str, *, locale: str = "") -> list[str]:
  """Splits raw text into MTOP-style tokens; locale "es_XX" adds es splits.

  Idempotent, tokenize(" ".join(tokenize(s))) == tokenize(s), except for
  a clitic after a space ("Vanessa 's" -> "'", "s", as MTOP's own tokens
  have it, while "Vanessa's" -> "'s"). Text that is already tokenized is
  best read with its tokens (readers: MTOP's column 8, TOP's column 2, a
  `tokens` column).
  """
  spanish = locale.lower().startswith("es")
  tokens = []
  for chunk in text.split():
    if _OWN_TOKEN.fullmatch(chunk):
      tokens.append(chunk)
    else:
      tokens += _segment_thai(chunk, spanish)
  return tokens


def _chunk_tokens(chunk: str, spanish: bool) -> list[str]:
  """Tokens of a whitespace-free chunk without Thai: URLs and e-mail
  addresses whole, the rest as words and symbols."""
  tokens, start = [], 0
  for m in _URL_OR_EMAIL.finditer(chunk):
    for w in _words(chunk[start : m.start()]):
      tokens.extend(_split_word(w, spanish))
    tokens.append(m.group())
    start = m.end()
  for w in _words(chunk[start:]):
    tokens.extend(_split_word(w, spanish))
  return tokens


def _segment_thai(chunk: str, spanish: bool) -> list[str]:
  """Tokens of a whitespace-free chunk: Thai runs by ICU, the rest by the
  rules above."""
  out, start = [], 0
  for m in _THAI.finditer(chunk):
    out += _chunk_tokens(chunk[start : m.start()], spanish)
    out += _thai_words(m.group())
    start = m.end()
  return out + _chunk_tokens(chunk[start:], spanish)
