"""Writes fingerprints.json: golden vectors of the host side of a parse.

  python tests/golden/make_fingerprints.py   # from the repository root

utterance -> tokens (data/tokenizer.py) -> at most T_max of them ->
fingerprints (projection.fingerprint, word then token features) -> length
bucket. Any port (the C one under ports/, an app's Kotlin or Swift) checks
itself against the file; tests/fingerprint_spec_test.py checks this
package against it, so a change of either side shows. The utterances are
written for this file, not taken from any dataset.
"""

import json
from pathlib import Path

from pqrnn_jax import projection
from pqrnn_jax.data import tokenizer
from pqrnn_jax.tflite_signatures import DEFAULT_BUCKETS, bucket_lengths

OUT = Path(__file__).with_name("fingerprints.json")
MAX_LEN = 40  # configs/mtop.py
FEATURES = ("shape", "prefix3", "suffix3")  # configs/mtop.py

# (utterance, locale, needs ICU's Thai word break)
CASES = [
  ("wake me up at 7 am", "en_XX", False),
  ("Set an alarm for 6:45am tomorrow", "en_XX", False),
  ("What's the weather in São Paulo?", "en_XX", False),
  ("Remind me to call Dr. O'Brien at 5pm", "en_XX", False),
  ("STRASSE Straße ǅemal ΣΊΣΥΦΟΣ ﬁle", "de_DE", False),
  ("Rappelle-moi d'appeler l'équipe à 8h30", "fr_FR", False),
  ("Recuérdame comprar 1,5 kg de café", "es_ES", False),
  ("मुझे सुबह ७ बजे जगाओ", "hi_IN", False),
  ("mail a.b@example.com or open www.example.org/x", "en_XX", False),
  ("Play 🙂 music by 6LACK on my iPhone x² ١٢", "en_XX", False),
  ("ตั้งนาฬิกาปลุก 7 โมงเช้า", "th_TH", True),
  (" ".join(["one two three four"] * 3), "en_XX", False),  # 12: bucket 12
  (" ".join(["one two three four"] * 3) + " five", "en_XX", False),  # 24
  (" ".join(f"w{i}" for i in range(45)), "en_XX", False),  # Cut to 40.
]
# MurmurHash3_x86_32, seed 0: every tail length, and a classic vector.
MURMUR = ["", "a", "ab", "abc", "abcd", "abcde", "héllo", "The quick brown fox"]


def bucket(n: int) -> int:
  buckets = bucket_lengths(MAX_LEN, DEFAULT_BUCKETS)
  return next(t for t in buckets if t >= min(n, MAX_LEN))


def case(utterance: str, locale: str, icu: bool) -> dict:
  tokens = tokenizer.tokenize(utterance, locale=locale)
  kept = tokens[:MAX_LEN]
  fps = projection.fingerprint(kept, FEATURES)
  return {
    "utterance": utterance,
    "locale": locale,
    "needs_icu": icu,
    "tokens": tokens,
    "length": len(kept),
    "bucket": bucket(len(tokens)),
    "fingerprints": [[f"{int(x):08x}" for x in row] for row in fps],
  }


def golden() -> dict:
  return {
    "format": "pqrnn_jax fingerprint vectors/1",
    "projection_format": projection.FORMAT_VERSION,
    "max_len": MAX_LEN,
    "buckets": bucket_lengths(MAX_LEN, DEFAULT_BUCKETS),
    "features": list(FEATURES),
    "murmur3_x86_32_seed0": [
      {"utf8": s, "hash": f"{projection._murmur(s):08x}"} for s in MURMUR
    ],
    "cases": [case(*c) for c in CASES],
  }


if __name__ == "__main__":
  OUT.write_text(json.dumps(golden(), ensure_ascii=False, indent=1) + "\n")
  print(f"wrote {OUT}")
