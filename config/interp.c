/*
 * interp.c - ${VAR} interpolation of scalar values.
 *
 *   ${VAR}            value of VAR; error if VAR is unset
 *   ${VAR:-default}   VAR, or default (itself interpolated) if unset/empty
 *   ${VAR:?message}   VAR; error "VAR: message" if unset/empty
 *   $$                a literal '$'
 * Any other '$' is kept as is. Error reasons name variables, never their
 * values, since those are often credentials.
 */
#include "interp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/buf.h"
#include "../src/util.h"

/* ${A:-${B:-${C}}} nests; a bound keeps hostile input off the C stack. */
#define SL_INTERP_MAX_NEST 16

static bool name_char(char c, bool first) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (!first && c >= '0' && c <= '9');
}

/* Finds the '}' that closes a reference whose text starts at s[from],
 * skipping nested ${...} pairs and $$. Returns its index or -1. */
static long find_close(const char *s, size_t n, size_t from) {
  int depth = 0;
  for (size_t i = from; i < n; i++) {
    if (s[i] == '$' && i + 1 < n && (s[i + 1] == '$' || s[i + 1] == '{')) {
      if (s[i + 1] == '{')
        depth++;
      i++;
    } else if (s[i] == '}') {
      if (depth == 0)
        return (long)i;
      depth--;
    }
  }
  return -1;
}

static int expand(const char *s, size_t n, struct sl_buf *out, int nest,
                  char *why, size_t why_len);

/* Expands the reference "${...}" whose name starts at s[start] and whose
 * closing brace is s[end]. */
static int expand_ref(const char *s, size_t start, size_t end,
                      struct sl_buf *out, int nest, char *why, size_t why_len) {
  size_t j = start;
  while (j < end && name_char(s[j], j == start))
    j++;
  size_t name_len = j - start;
  char op = 0;
  if (j < end) {
    if (s[j] == ':' && j + 1 < end && (s[j + 1] == '-' || s[j + 1] == '?'))
      op = s[j + 1];
    else
      name_len = 0; /* a stray character: report the whole reference */
  }
  if (name_len == 0) {
    snprintf(why, why_len,
             "invalid variable reference '${%.*s}': write ${NAME}, "
             "${NAME:-default} or ${NAME:?message} (NAME is letters, digits "
             "and '_'), or $$ for a literal '$'",
             (int)(end - start), s + start);
    return -1;
  }

  char *name = sl_strndup(s + start, name_len);
  const char *val = getenv(name);
  const char *body = s + j + 2; /* after ":-" or ":?" */
  size_t body_len = op ? end - (j + 2) : 0;
  int rc = 0;

  if (!op) {
    if (val) {
      sl_buf_adds(out, val);
    } else {
      snprintf(why, why_len,
               "environment variable %s is not set (use ${%s:-default} to "
               "give a default)",
               name, name);
      rc = -1;
    }
  } else if (val && *val) {
    sl_buf_adds(out, val);
  } else if (op == '-') {
    rc = expand(body, body_len, out, nest + 1, why, why_len);
  } else if (body_len) {
    snprintf(why, why_len, "%s: %.*s", name, (int)body_len, body);
    rc = -1;
  } else {
    snprintf(why, why_len, "%s: environment variable is not set or empty",
             name);
    rc = -1;
  }
  free(name);
  return rc;
}

/* Appends the expansion of s[0..n) to out. */
static int expand(const char *s, size_t n, struct sl_buf *out, int nest,
                  char *why, size_t why_len) {
  if (nest > SL_INTERP_MAX_NEST) {
    snprintf(why, why_len, "variable references nested more than %d deep",
             SL_INTERP_MAX_NEST);
    return -1;
  }
  size_t i = 0;
  while (i < n) {
    const char *dollar = memchr(s + i, '$', n - i);
    size_t stop = dollar ? (size_t)(dollar - s) : n;
    sl_buf_add(out, s + i, stop - i);
    i = stop;
    if (i >= n)
      break;
    if (i + 1 < n && s[i + 1] == '$') {
      sl_buf_add(out, "$", 1);
      i += 2;
    } else if (i + 1 < n && s[i + 1] == '{') {
      long end = find_close(s, n, i + 2);
      if (end < 0) {
        snprintf(why, why_len, "unterminated '${' (missing '}')");
        return -1;
      }
      if (expand_ref(s, i + 2, (size_t)end, out, nest, why, why_len) != 0)
        return -1;
      i = (size_t)end + 1;
    } else {
      sl_buf_add(out, "$", 1);
      i++;
    }
  }
  return 0;
}

int sl_cfg_interpolate(const char *s, char **out, char *why, size_t why_len) {
  struct sl_buf b = {0};
  if (expand(s, strlen(s), &b, 0, why, why_len) != 0) {
    sl_buf_free(&b);
    *out = NULL;
    return -1;
  }
  *out = sl_buf_take(&b);
  return 0;
}
