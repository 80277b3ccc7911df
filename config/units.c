/*
 * units.c - scalar converters (integers, booleans, durations, sizes) and
 * the edit distance behind did-you-mean suggestions.
 *
 * The converters explain a failure in words a user can act on, and quote
 * the offending value only when it is not a secret.
 */
#include "config.h"
#include "cfg_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../src/util.h"

/* Writes "'value' <fmt...>" (or "the value <fmt...>" for a secret) into
 * why; returns -1 for the converters' convenience. */
static int __attribute__((format(printf, 5, 6)))
explain(char *why, size_t why_len, const char *s, bool secret, const char *fmt,
        ...) {
  char rest[SL_CFG_WHY_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rest, sizeof(rest), fmt, ap);
  va_end(ap);
  if (secret)
    snprintf(why, why_len, "the value %s", rest);
  else if (strlen(s) > 120)
    snprintf(why, why_len, "'%.120s...' %s", s, rest);
  else
    snprintf(why, why_len, "'%s' %s", s, rest);
  return -1;
}

/* ------------------------------------------------------------ numbers */

enum num_fail { NUM_OK, NUM_SYNTAX, NUM_RANGE };

/* Parses an optionally signed decimal with '_' allowed between digits. */
static enum num_fail parse_int(const char *s, int64_t *out) {
  const char *p = s;
  bool neg = false;
  uint64_t mag = 0, limit;
  if (*p == '+' || *p == '-')
    neg = *p++ == '-';
  if (!isdigit((unsigned char)*p))
    return NUM_SYNTAX;
  limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; *p; p++) {
    if (*p == '_' && isdigit((unsigned char)p[1]) &&
        isdigit((unsigned char)p[-1]))
      continue;
    if (!isdigit((unsigned char)*p))
      return NUM_SYNTAX;
    unsigned d = (unsigned)(*p - '0');
    if (mag > (limit - d) / 10)
      return NUM_RANGE;
    mag = mag * 10 + d;
  }
  *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  return NUM_OK;
}

int sl_cfg_conv_int(const char *s, bool secret, int64_t *out, char *why,
                    size_t why_len) {
  switch (parse_int(s, out)) {
  case NUM_OK:
    return 0;
  case NUM_RANGE:
    return explain(why, why_len, s, secret, "does not fit in a 64-bit integer");
  default:
    return explain(why, why_len, s, secret, "is not an integer");
  }
}

int sl_cfg_conv_bool(const char *s, bool secret, bool *out, char *why,
                     size_t why_len) {
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return explain(why, why_len, s, secret,
                 "is not a boolean (use true/false, yes/no or on/off)");
}

/* A decimal number "12", "1.5", ".25": whole part and up to 9 fraction
 * digits as frac / 10^frac_digits (further digits are dropped). */
struct decimal {
  uint64_t whole, frac, frac_scale;
  bool has_point;
};

/* Reads a decimal at *pp; advances it. Returns NUM_SYNTAX when there are
 * no digits at all, NUM_RANGE when the whole part overflows. */
static enum num_fail read_decimal(const char **pp, struct decimal *d) {
  const char *p = *pp;
  bool digits = false;
  memset(d, 0, sizeof(*d));
  d->frac_scale = 1;
  for (; isdigit((unsigned char)*p) ||
         (*p == '_' && p > *pp && isdigit((unsigned char)p[1]));
       p++) {
    if (*p == '_')
      continue;
    unsigned v = (unsigned)(*p - '0');
    if (d->whole > (UINT64_MAX - v) / 10)
      return NUM_RANGE;
    d->whole = d->whole * 10 + v;
    digits = true;
  }
  if (*p == '.') {
    d->has_point = true;
    for (p++; isdigit((unsigned char)*p); p++) {
      digits = true;
      if (d->frac_scale < 1000000000ull) {
        d->frac = d->frac * 10 + (uint64_t)(*p - '0');
        d->frac_scale *= 10;
      }
    }
  }
  *pp = p;
  return digits ? NUM_OK : NUM_SYNTAX;
}

/* d * mult into *acc, adding; false on overflow of int64. */
static bool add_scaled(int64_t *acc, const struct decimal *d, int64_t mult) {
  __int128 v = (__int128)d->whole * mult +
               (__int128)d->frac * mult / (__int128)d->frac_scale;
  v += *acc;
  if (v > INT64_MAX)
    return false;
  *acc = (int64_t)v;
  return true;
}

static const char *skip_blanks(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* ---------------------------------------------------------- durations */

struct unit {
  const char *name;
  int64_t mult;
};

static const struct unit duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"µs", 1000},
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60ll * 1000000000},
    {"h", 3600ll * 1000000000},
    {"d", 86400ll * 1000000000},
};

enum unit_fail { U_OK, U_SYNTAX, U_NOUNIT, U_UNIT, U_NEG, U_RANGE };

/* Parses "1h30m", "1.5s", "250 ms". Sets unit/unit_len for U_UNIT. */
static enum unit_fail parse_duration(const char *s, int64_t *out,
                                     const char **unit, size_t *unit_len) {
  const char *p = skip_blanks(s);
  int64_t total = 0;
  int parts = 0;
  bool bare_zero = false;
  if (*p == '-')
    return U_NEG;
  if (*p == '+')
    p++;
  while (*p) {
    struct decimal d;
    enum num_fail nf = read_decimal(&p, &d);
    if (nf == NUM_RANGE)
      return U_RANGE;
    if (nf != NUM_OK)
      return U_SYNTAX;
    p = skip_blanks(p);
    const char *u = p;
    while (*p && ((unsigned char)*p >= 0x80 || isalpha((unsigned char)*p)))
      p++;
    if (p == u) {
      if (*p)
        return U_SYNTAX;
      /* "0" needs no unit: zero is zero in any unit. */
      if (parts == 0 && d.whole == 0 && d.frac == 0) {
        bare_zero = true;
        break;
      }
      return parts == 0 ? U_NOUNIT : U_SYNTAX;
    }
    const struct unit *found = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(duration_units); i++)
      if (strlen(duration_units[i].name) == (size_t)(p - u) &&
          memcmp(duration_units[i].name, u, (size_t)(p - u)) == 0)
        found = &duration_units[i];
    if (!found) {
      *unit = u;
      *unit_len = (size_t)(p - u);
      return U_UNIT;
    }
    if (!add_scaled(&total, &d, found->mult))
      return U_RANGE;
    parts++;
    p = skip_blanks(p);
  }
  if (parts == 0 && !bare_zero)
    return U_SYNTAX;
  *out = total;
  return U_OK;
}

int sl_cfg_conv_duration(const char *s, bool secret, int64_t *out, char *why,
                         size_t why_len) {
  const char *unit = NULL;
  size_t unit_len = 0;
  switch (parse_duration(s, out, &unit, &unit_len)) {
  case U_OK:
    return 0;
  case U_NOUNIT:
    return explain(why, why_len, s, secret,
                   "needs a unit: 100ms, 2s, 5m, ... (units: ns, us, ms, s, "
                   "m, h, d)");
  case U_UNIT:
    if (secret)
      return explain(why, why_len, s, secret,
                     "has an unknown unit (units: ns, us, ms, s, m, h, d)");
    return explain(why, why_len, s, secret,
                   "has an unknown unit '%.*s' (units: ns, us, ms, s, m, h, "
                   "d)",
                   (int)SL_MIN(unit_len, 40), unit);
  case U_NEG:
    return explain(why, why_len, s, secret,
                   "is negative; a duration must "
                   "be 0 or more");
  case U_RANGE:
    return explain(why, why_len, s, secret,
                   "is too long a duration (at most 292 years)");
  default:
    return explain(why, why_len, s, secret,
                   "is not a duration (write it like 250us, 100ms, 2s, 5m, "
                   "1h or 1d)");
  }
}

int sl_parse_duration(const char *s, int64_t *out_ns) {
  const char *unit;
  size_t unit_len;
  int64_t v;
  if (!s || parse_duration(s, &v, &unit, &unit_len) != U_OK)
    return -1;
  *out_ns = v;
  return 0;
}

/* Largest unit that divides ns exactly. */
void sl_cfg_fmt_duration(int64_t ns, char *buf, size_t n) {
  for (size_t i = SL_ARRAY_LEN(duration_units); i-- > 0;) {
    const struct unit *u = &duration_units[i];
    if (strcmp(u->name, "µs") == 0) /* print "us" instead */
      continue;
    if (ns != 0 && ns % u->mult == 0) {
      snprintf(buf, n, "%lld%s", (long long)(ns / u->mult), u->name);
      return;
    }
  }
  snprintf(buf, n, "%lld%s", (long long)ns, ns ? "ns" : "s");
}

/* --------------------------------------------------------------- sizes */

static const struct unit size_units[] = {
    {"b", 1},
    {"k", 1ll << 10},
    {"kib", 1ll << 10},
    {"kb", 1000},
    {"m", 1ll << 20},
    {"mib", 1ll << 20},
    {"mb", 1000000},
    {"g", 1ll << 30},
    {"gib", 1ll << 30},
    {"gb", 1000000000},
    {"t", 1ll << 40},
    {"tib", 1ll << 40},
    {"tb", 1000000000000ll},
};

/* Parses "512", "64KiB", "1.5 MB" (units are case-insensitive). */
static enum unit_fail parse_size(const char *s, int64_t *out, const char **unit,
                                 size_t *unit_len) {
  const char *p = skip_blanks(s), *u;
  struct decimal d;
  int64_t total = 0;
  int64_t mult = 1;
  if (*p == '-')
    return U_NEG;
  if (*p == '+')
    p++;
  enum num_fail nf = read_decimal(&p, &d);
  if (nf == NUM_RANGE)
    return U_RANGE;
  if (nf != NUM_OK)
    return U_SYNTAX;
  p = skip_blanks(p);
  u = p;
  while (isalpha((unsigned char)*p))
    p++;
  if (*skip_blanks(p))
    return U_SYNTAX;
  if (p == u) {
    if (d.has_point)
      return U_SYNTAX; /* a fraction of a byte */
  } else {
    const struct unit *found = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(size_units); i++)
      if (strlen(size_units[i].name) == (size_t)(p - u) &&
          strncasecmp(size_units[i].name, u, (size_t)(p - u)) == 0)
        found = &size_units[i];
    if (!found) {
      *unit = u;
      *unit_len = (size_t)(p - u);
      return U_UNIT;
    }
    mult = found->mult;
  }
  if (!add_scaled(&total, &d, mult))
    return U_RANGE;
  *out = total;
  return U_OK;
}

int sl_cfg_conv_size(const char *s, bool secret, int64_t *out, char *why,
                     size_t why_len) {
  const char *unit = NULL;
  size_t unit_len = 0;
  switch (parse_size(s, out, &unit, &unit_len)) {
  case U_OK:
    return 0;
  case U_UNIT:
    if (secret)
      return explain(why, why_len, s, secret,
                     "has an unknown unit (units: B, KB, MB, GB, KiB, MiB, "
                     "GiB)");
    return explain(why, why_len, s, secret,
                   "has an unknown unit '%.*s' (units: B, KB, MB, GB, KiB, "
                   "MiB, GiB)",
                   (int)SL_MIN(unit_len, 40), unit);
  case U_NEG:
    return explain(why, why_len, s, secret,
                   "is negative; a size must be 0 or more");
  case U_RANGE:
    return explain(why, why_len, s, secret, "is too large a size");
  default:
    return explain(why, why_len, s, secret,
                   "is not a size (write it like 512, 64KiB, 1MB or 2GiB)");
  }
}

int sl_parse_size(const char *s, int64_t *out_bytes) {
  const char *unit;
  size_t unit_len;
  int64_t v;
  if (!s || parse_size(s, &v, &unit, &unit_len) != U_OK)
    return -1;
  *out_bytes = v;
  return 0;
}

/* Binary units when exact, else bytes. */
void sl_cfg_fmt_size(int64_t bytes, char *buf, size_t n) {
  static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; i++) {
    int64_t mult = 1ll << (10 * (4 - i));
    if (bytes != 0 && bytes % mult == 0) {
      snprintf(buf, n, "%lld%s", (long long)(bytes / mult), names[i]);
      return;
    }
  }
  snprintf(buf, n, "%lld", (long long)bytes);
}

/* ---------------------------------------------------- public wrappers */

/* n must be a scalar; what is "an integer" etc. */
static int need_scalar(const struct sl_cfg_node *n, const char *what,
                       struct sl_error *err) {
  if (!n)
    return sl_error_set(err, SL_ERR_CONFIG, "missing value (expected %s)",
                        what);
  if (n->kind != SL_CFG_SCALAR)
    return sl_cfg_error(err, n, "expected %s, got %s", what,
                        sl_cfg_kind_name(n));
  return 0;
}

int sl_cfg_int(const struct sl_cfg_node *n, int64_t *out,
               struct sl_error *err) {
  char why[SL_CFG_WHY_MAX];
  if (need_scalar(n, "an integer", err))
    return SL_ERR_CONFIG;
  if (sl_cfg_conv_int(n->scalar, false, out, why, sizeof(why)))
    return sl_cfg_error(err, n, "%s", why);
  return 0;
}

int sl_cfg_bool(const struct sl_cfg_node *n, bool *out, struct sl_error *err) {
  char why[SL_CFG_WHY_MAX];
  if (need_scalar(n, "a boolean", err))
    return SL_ERR_CONFIG;
  if (sl_cfg_conv_bool(n->scalar, false, out, why, sizeof(why)))
    return sl_cfg_error(err, n, "%s", why);
  return 0;
}

int sl_cfg_duration(const struct sl_cfg_node *n, int64_t *out_ns,
                    struct sl_error *err) {
  char why[SL_CFG_WHY_MAX];
  if (need_scalar(n, "a duration", err))
    return SL_ERR_CONFIG;
  if (sl_cfg_conv_duration(n->scalar, false, out_ns, why, sizeof(why)))
    return sl_cfg_error(err, n, "%s", why);
  return 0;
}

int sl_cfg_size(const struct sl_cfg_node *n, int64_t *out_bytes,
                struct sl_error *err) {
  char why[SL_CFG_WHY_MAX];
  if (need_scalar(n, "a size", err))
    return SL_ERR_CONFIG;
  if (sl_cfg_conv_size(n->scalar, false, out_bytes, why, sizeof(why)))
    return sl_cfg_error(err, n, "%s", why);
  return 0;
}

/* ------------------------------------------------------ edit distance */

/* Two-row Levenshtein; stops as soon as a whole row exceeds cap. */
int sl_edit_distance(const char *a, const char *b, int cap) {
  size_t la = strlen(a), lb = strlen(b);
  size_t diff = la > lb ? la - lb : lb - la;
  int result;
  if (cap < 0)
    cap = 0;
  if (diff > (size_t)cap)
    return cap + 1;
  int *prev = sl_malloc((lb + 1) * sizeof(int));
  int *cur = sl_malloc((lb + 1) * sizeof(int));
  for (size_t j = 0; j <= lb; j++)
    prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int row_min;
    cur[0] = (int)i;
    row_min = cur[0];
    for (size_t j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = SL_MIN(sub, SL_MIN(del, ins));
      row_min = SL_MIN(row_min, cur[j]);
    }
    int *t = prev;
    prev = cur;
    cur = t;
    if (row_min > cap) {
      result = cap + 1;
      goto out;
    }
  }
  result = SL_MIN(prev[lb], cap + 1);
out:
  free(prev);
  free(cur);
  return result;
}

/* Lower case, '-' as '_': "Max-Records" and "max_records" are neighbours. */
static char *normalized(const char *s) {
  char *c = sl_strdup(s);
  for (char *p = c; *p; p++)
    *p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
  return c;
}

/* A suggestion must be within distance 2 and closer than the typed word is
 * long, so that "x" does not suggest "y". Same up to case and '-'/'_' is
 * distance 0 and always suggested. */
int sl_cfg_near(const char *typed, const char *known) {
  char *a = normalized(typed), *b = normalized(known);
  int d = sl_edit_distance(a, b, 2);
  free(a);
  free(b);
  if (d > 2 || (d > 0 && (size_t)d >= strlen(typed)))
    return -1;
  return d;
}

const char *sl_suggest_name(const char *key, const char *const *names) {
  const char *best = NULL;
  int bestd = 3;
  for (size_t i = 0; names[i]; i++) {
    int d = sl_edit_distance(key, names[i], 2);
    if (d < bestd) {
      bestd = d;
      best = names[i];
    }
  }
  return best;
}
