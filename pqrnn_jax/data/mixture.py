"""Several data files as one split: file specs, ID slices, mixing weights.

A spec is `[LOCALE=]PATH[[A%:B%]]`:
  de/eval.txt                 every row
  de/eval.txt[:90%]           rows whose ID falls in the first 90 of 100
                              hash buckets (and [90%:] the other 10 %)
  en_XX=derived/en_train.tsv  rows without a locale get en_XX
The slice is by a hash of the example's ID, not its row number, so a split
is the same whatever the file's order, and an utterance's translations
(one ID in every MTOP language) land on the same side.

Training mixes its sources by sampling weights, or by a temperature over
their sizes (p_i proportional to n_i ** (1 / temperature): 1 keeps the
natural proportions, larger flattens them towards uniform), realised as a
fixed, seeded list: each source repeated and subsampled to its share of
the total row count.
"""

import dataclasses
import re

import mmh3
import numpy as np

_SPEC = re.compile(
  r"^(?:(?P<locale>[A-Za-z]{2,3}(?:_[A-Za-z]{2})?)=)?(?P<path>.+?)"
  r"(?:\[(?P<lo>\d{0,3})%?:(?P<hi>\d{0,3})%?\])?$"
)


@dataclasses.dataclass(frozen=True)
class Source:
  """One parsed spec: path, locale for rows without one, ID-bucket range."""

  path: str
  locale: str = ""
  lo: int = 0
  hi: int = 100


def parse_spec(spec: str) -> Source:
  """Source of a spec string; raises ValueError naming what is wrong."""
  m = _SPEC.match(spec.strip())
  if not m or not m.group("path"):
    raise ValueError(f"data file spec {spec!r}: want [LOCALE=]PATH[[A%:B%]]")
  lo, hi = int(m.group("lo") or 0), int(m.group("hi") or 100)
  if not 0 <= lo < hi <= 100:
    raise ValueError(f"data file spec {spec!r}: need 0 <= A < B <= 100")
  return Source(m.group("path"), m.group("locale") or "", lo, hi)


def id_bucket(example_id: str) -> int:
  """0..99: MurmurHash3 (seed 0) of the ID's UTF-8 bytes, mod 100."""
  return mmh3.hash(example_id.encode("utf-8", "surrogatepass"), 0, False) % 100


def select(examples, source: Source) -> list:
  """The examples of `source`'s ID slice, with its locale where they lack
  one."""
  out = []
  for e in examples:
    if source.lo <= id_bucket(e.id) < source.hi:
      if source.locale and not e.locale:
        e = dataclasses.replace(e, locale=source.locale)
      out.append(e)
  return out


def shares(sizes, weights=(), temperature: float = 1.0) -> np.ndarray:
  """Sampling probabilities of sources of `sizes`: the weights normalised,
  or sizes ** (1 / temperature) normalised."""
  sizes = np.asarray(sizes, np.float64)
  if len(weights):
    if len(weights) != len(sizes):
      raise ValueError(
        f"{len(weights)} train_weights for {len(sizes)} train_files"
      )
    p = np.asarray(weights, np.float64)
  else:
    if temperature <= 0:
      raise ValueError(f"mixture_temperature={temperature}: need > 0")
    p = sizes ** (1.0 / temperature)
  if (p < 0).any() or p.sum() <= 0:
    raise ValueError(f"mixture weights {list(p)}: need >= 0, not all 0")
  return p / p.sum()


def mix(groups, weights=(), temperature: float = 1.0, seed: int = 0):
  """One list from lists of examples: source i contributes round(p_i * N)
  rows (N = all rows), as whole repeats plus a seeded random subset."""
  sizes = [len(g) for g in groups]
  empty = [i for i, n in enumerate(sizes) if not n]
  if empty:
    raise ValueError(f"train source #{empty[0]} has no rows")
  p = shares(sizes, weights, temperature)
  rng = np.random.default_rng(seed)
  out = []
  for g, want in zip(groups, np.rint(p * sum(sizes)).astype(int), strict=True):
    reps, rest = divmod(int(want), len(g))
    out += list(g) * reps
    out += [g[i] for i in sorted(rng.permutation(len(g))[:rest])]
  return out
