/* pqrnn_jax token fingerprints in portable C99, no dependencies.

   What an app computes on the host before it calls the .tflite file
   (README.md, "The contract"): one uint32 per token, MurmurHash3_x86_32
   with seed 0 of the case-folded token's UTF-8 bytes, plus one hash per
   token feature of "<name>\x1f<value>", and the length bucket to run.
   Checked against tests/golden/fingerprints.json by
   tests/fingerprint_spec_test.py.

   Build the command-line checker:
     cc -std=c99 -O2 -DPQRNN_FINGERPRINT_MAIN -o pqrnn_fingerprint \
       ports/c/pqrnn_fingerprint.c
   It reads one utterance per line, tokens separated by tabs, and prints
   "<length> <bucket>" and then each kept token's hashes in hex
   (word,feature,...), separated by spaces:
     ./pqrnn_fingerprint --features shape,prefix3,suffix3 \
       --buckets 12,24 --max-len 40 < tokens.tsv
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_tables.h"

/* MurmurHash3_x86_32; blocks read little-endian whatever the CPU's order. */
uint32_t pqrnn_murmur3_32(const uint8_t *data, size_t n, uint32_t seed) {
  const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
  uint32_t h = seed, k;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
        (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
    k *= c1;
    k = (k << 15) | (k >> 17);
    k *= c2;
    h ^= k;
    h = (h << 13) | (h >> 19);
    h = h * 5 + 0xe6546b64u;
  }
  k = 0;
  switch (n & 3) {
    case 3: k ^= (uint32_t)data[i + 2] << 16; /* fall through */
    case 2: k ^= (uint32_t)data[i + 1] << 8; /* fall through */
    case 1:
      k ^= data[i];
      k *= c1;
      k = (k << 15) | (k >> 17);
      k *= c2;
      h ^= k;
  }
  h ^= (uint32_t)n;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* UTF-8 -> code points; returns how many, or -1 on malformed input. */
static long utf8_decode(const uint8_t *s, size_t n, uint32_t *cps) {
  long m = 0;
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i];
    int extra = c < 0x80 ? 0 : c >> 5 == 6 ? 1 : c >> 4 == 14 ? 2
              : c >> 3 == 30 ? 3 : -1;
    if (extra < 0 || i + (size_t)extra >= n) return -1;
    if (extra) c &= 0x3f >> extra;
    for (int j = 1; j <= extra; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return -1;
      c = c << 6 | (s[i + j] & 0x3f);
    }
    cps[m++] = c;
    i += extra + 1;
  }
  return m;
}

static size_t utf8_encode(uint32_t c, uint8_t *out) {
  if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
  if (c < 0x800) {
    out[0] = (uint8_t)(0xc0 | c >> 6);
    out[1] = (uint8_t)(0x80 | (c & 0x3f));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (uint8_t)(0xe0 | c >> 12);
    out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
    out[2] = (uint8_t)(0x80 | (c & 0x3f));
    return 3;
  }
  out[0] = (uint8_t)(0xf0 | c >> 18);
  out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
  out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
  out[3] = (uint8_t)(0x80 | (c & 0x3f));
  return 4;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < r[mid][0]) hi = mid;
    else if (c > r[mid][1]) lo = mid + 1;
    else return 1;
  }
  return 0;
}

/* Full case folding of one code point into out[3]; returns the count. */
static int casefold(uint32_t c, uint32_t *out) {
  size_t lo = 0, hi = FOLD_N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < FOLD[mid].cp) hi = mid;
    else if (c > FOLD[mid].cp) lo = mid + 1;
    else {
      memcpy(out, FOLD[mid].out, sizeof(FOLD[mid].out));
      return FOLD[mid].n;
    }
  }
  out[0] = c;
  return 1;
}

/* Hash of "<prefix><code points>" as UTF-8; buf holds 4 bytes per code
   point plus the prefix. */
static uint32_t hash_cps(const char *prefix, const uint32_t *cps, size_t n,
                         uint8_t *buf) {
  size_t len = strlen(prefix);
  memcpy(buf, prefix, len);
  for (size_t i = 0; i < n; i++) len += utf8_encode(cps[i], buf + len);
  return pqrnn_murmur3_32(buf, len, 0);
}

/* "Xx"-style shape: upper -> X, lower -> x, digit -> d, anything else as
   it is, runs collapsed (of the token as written, not case-folded). */
static size_t shape(const uint32_t *cps, size_t n, uint32_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = cps[i];
    uint32_t s = in_ranges(UPPER, UPPER_N, c)   ? 'X'
                 : in_ranges(LOWER, LOWER_N, c) ? 'x'
                 : in_ranges(DIGIT, DIGIT_N, c) ? 'd'
                                                : c;
    if (m == 0 || out[m - 1] != s) out[m++] = s;
  }
  return m;
}

/* Fingerprints of one token (UTF-8, `len` bytes): out[0] is the word's
   hash, out[1 + k] that of feature features[k] ("shape", "prefix2".."4",
   "suffix2".."4"). Returns 0, or -1 for malformed UTF-8, an unknown
   feature or no memory. */
int pqrnn_fingerprint(const char *token, size_t len,
                      const char *const *features, int num_features,
                      uint32_t *out) {
  uint32_t *cps = malloc((len + 1) * sizeof *cps);
  uint32_t *fold = malloc((3 * len + 1) * sizeof *fold);
  uint8_t *buf = malloc(12 * len + 32);
  long n = cps && fold && buf ? utf8_decode((const uint8_t *)token, len, cps)
                              : -1;
  int rc = n < 0 ? -1 : 0;
  size_t nf = 0;
  for (long i = 0; i < n; i++) nf += casefold(cps[i], fold + nf);
  if (rc == 0) out[0] = hash_cps("", fold, nf, buf);
  for (int k = 0; rc == 0 && k < num_features; k++) {
    const char *f = features[k];
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s\x1f", f);
    /* prefixN / suffixN: N code points of the case-folded token. */
    size_t w = strlen(f) == 7 ? (size_t)(f[6] - '0') : 0;
    if (strcmp(f, "shape") == 0) {
      size_t m = shape(cps, (size_t)n, fold + nf);
      out[1 + k] = hash_cps(prefix, fold + nf, m, buf);
    } else if (w >= 2 && w <= 4 && strncmp(f, "prefix", 6) == 0) {
      out[1 + k] = hash_cps(prefix, fold, nf < w ? nf : w, buf);
    } else if (w >= 2 && w <= 4 && strncmp(f, "suffix", 6) == 0) {
      size_t from = nf < w ? 0 : nf - w;
      out[1 + k] = hash_cps(prefix, fold + from, nf - from, buf);
    } else {
      rc = -1;
    }
  }
  free(cps);
  free(fold);
  free(buf);
  return rc;
}

/* The encode signature to run for `count` tokens: the smallest bucket
   length >= min(count, max_len), else max_len (always a bucket). */
int pqrnn_bucket(int count, const int *buckets, int num_buckets,
                 int max_len) {
  int n = count < max_len ? count : max_len, best = max_len;
  for (int i = 0; i < num_buckets; i++)
    if (buckets[i] >= n && buckets[i] < best) best = buckets[i];
  return best;
}

#ifdef PQRNN_FINGERPRINT_MAIN
static int split(char *s, const char *sep, char **out, int max) {
  int n = 0;
  for (char *t = strtok(s, sep); t && n < max; t = strtok(NULL, sep))
    out[n++] = t;
  return n;
}

int main(int argc, char **argv) {
  char *features[8], *bucket_text[16], line[1 << 16];
  int num_features = 0, num_buckets = 0, buckets[16], max_len = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--features") == 0)
      num_features = split(argv[i + 1], ",", features, 8);
    else if (strcmp(argv[i], "--buckets") == 0)
      num_buckets = split(argv[i + 1], ",", bucket_text, 16);
    else if (strcmp(argv[i], "--max-len") == 0)
      max_len = atoi(argv[i + 1]);
  }
  for (int i = 0; i < num_buckets; i++) buckets[i] = atoi(bucket_text[i]);
  while (fgets(line, sizeof line, stdin)) {
    char *tokens[1024];
    line[strcspn(line, "\n")] = 0;
    int n = split(line, "\t", tokens, 1024), kept = n < max_len ? n : max_len;
    printf("%d %d", kept, pqrnn_bucket(n, buckets, num_buckets, max_len));
    for (int i = 0; i < kept; i++) {
      uint32_t h[9];
      if (pqrnn_fingerprint(tokens[i], strlen(tokens[i]),
                            (const char *const *)features, num_features, h)) {
        fprintf(stderr, "bad token or feature: %s\n", tokens[i]);
        return 1;
      }
      for (int k = 0; k <= num_features; k++)
        printf("%c%08x", k ? ',' : ' ', h[k]);
    }
    printf("\n");
  }
  return 0;
}
#endif
