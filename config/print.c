/* print.c - writes bound settings and tree nodes back as YAML, for
 * `sluice validate --print` (see config.h). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cfg_internal.h"
#include "config.h"

#define MASK "\"********\""

bool sl_cfg_secret_name(const char *name) {
  static const char *const words[] = {"password", "secret", "passwd",
                                      "token",    "jaas",   "credential",
                                      "ssl.key",  "ssl_key"};
  char low[256];
  size_t n = strlen(name) < sizeof(low) - 1 ? strlen(name) : sizeof(low) - 1;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)tolower((unsigned char)name[i]);
  low[n] = '\0';
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strstr(low, words[i]))
      return true;
  return false;
}

/* Whether s can be written without quotes and read back as the same
 * string (not a number, bool or null, no YAML syntax). */
static bool plain_ok(const char *s) {
  static const char *const words[] = {"true", "false", "yes", "no",   "on",
                                      "off",  "null",  "~",   "True", "False",
                                      "Null", "NULL",  "Yes", "No"};
  if (!*s || isspace((unsigned char)*s) ||
      isspace((unsigned char)s[strlen(s) - 1]))
    return false;
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strcmp(s, words[i]) == 0)
      return false;
  if (strchr("-?:,[]{}#&*!|>'\"%@`0123456789.+", *s))
    return false;
  for (const char *p = s; *p; p++) {
    if ((unsigned char)*p < 0x20 || strchr("\"'#{}[],", *p))
      return false;
    if (*p == ':' && (p[1] == ' ' || p[1] == '\0'))
      return false;
  }
  return true;
}

static void put_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c == '\t')
      fputs("\\t", out);
    else if (c < 0x20)
      fprintf(out, "\\x%02x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

/* A string value; the password of a scheme://user:password@host url is
 * masked. The password ends at the last '@' of the value (the Redis url
 * parser takes the last '@' of the authority; a password may hold an '@' or
 * a '/' that was not %-encoded, and masking up to the last '@' anywhere
 * never shows a part of it). */
static void put_str(FILE *out, const char *s) {
  const char *scheme = strstr(s, "://");
  const char *at = scheme ? strrchr(scheme + 3, '@') : NULL;
  const char *colon =
      at ? memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) : NULL;
  if (colon) {
    char masked[1024];
    snprintf(masked, sizeof(masked), "%.*s********%s", (int)(colon + 1 - s), s,
             at);
    put_quoted(out, masked);
    return;
  }
  if (plain_ok(s))
    fputs(s, out);
  else
    put_quoted(out, s);
}

static void indent_to(FILE *out, int indent) {
  for (int i = 0; i < indent; i++)
    fputc(' ', out);
}

static void print_entries(FILE *out, const struct sl_cfg_node *n, int indent,
                          bool first_inline);

void sl_cfg_print_node(FILE *out, const struct sl_cfg_node *n, int indent) {
  if (!n) {
    fputs(" ~\n", out);
    return;
  }
  if (n->kind == SL_CFG_SCALAR) {
    fputc(' ', out);
    /* A plain scalar reads back the same written plain (100, true). */
    if (n->plain && n->scalar[0] && !strstr(n->scalar, "://"))
      fputs(n->scalar, out);
    else
      put_str(out, n->scalar);
    fputc('\n', out);
    return;
  }
  if (n->n == 0) {
    fputs(n->kind == SL_CFG_MAP ? " {}\n" : " []\n", out);
    return;
  }
  fputc('\n', out);
  print_entries(out, n, indent, false);
}

/* The entries of a map or sequence, one per line at indent; with
 * first_inline the first goes on the current line (after "- "). A
 * sequence item that is a non-empty map starts on the dash's line. */
static void print_entries(FILE *out, const struct sl_cfg_node *n, int indent,
                          bool first_inline) {
  for (size_t i = 0; i < n->n; i++) {
    if (i || !first_inline)
      indent_to(out, indent);
    if (n->kind == SL_CFG_MAP) {
      put_str(out, n->keys[i]->scalar);
      fputc(':', out);
      if (sl_cfg_secret_name(n->keys[i]->scalar) &&
          n->items[i]->kind == SL_CFG_SCALAR)
        fputs(" " MASK "\n", out);
      else
        sl_cfg_print_node(out, n->items[i], indent + 2);
    } else if (n->items[i]->kind == SL_CFG_MAP && n->items[i]->n) {
      fputs("- ", out);
      print_entries(out, n->items[i], indent + 2, true);
    } else {
      fputc('-', out);
      sl_cfg_print_node(out, n->items[i], indent + 2);
    }
  }
}

void sl_cfg_print(FILE *out, const struct sl_cfg_field *t, const void *base,
                  int indent) {
  char buf[64];
  for (; t->key; t++) {
    const char *slot = (const char *)base + t->offset;
    bool secret = (t->flags & SL_CFG_SECRET) != 0;
    if (t->type == SL_CFG_T_STR && !*(char *const *)slot)
      continue; /* unset, no default */
    if (t->type == SL_CFG_T_NODE && !*(const struct sl_cfg_node *const *)slot)
      continue;
    indent_to(out, indent);
    fprintf(out, "%s:", t->key);
    if (secret) {
      fputs(" " MASK "\n", out);
      continue;
    }
    switch (t->type) {
    case SL_CFG_T_STR:
      fputc(' ', out);
      put_str(out, *(char *const *)slot);
      fputc('\n', out);
      break;
    case SL_CFG_T_INT:
      fprintf(out, " %" PRId64 "\n", *(const int64_t *)slot);
      break;
    case SL_CFG_T_BOOL:
      fprintf(out, " %s\n", *(const bool *)slot ? "true" : "false");
      break;
    case SL_CFG_T_DURATION:
      sl_cfg_fmt_duration(*(const int64_t *)slot, buf, sizeof(buf));
      fprintf(out, " %s\n", buf);
      break;
    case SL_CFG_T_SIZE:
      sl_cfg_fmt_size(*(const int64_t *)slot, buf, sizeof(buf));
      fprintf(out, " %s\n", buf);
      break;
    case SL_CFG_T_ENUM:
      fprintf(out, " %s\n", t->enum_values[*(const int *)slot]);
      break;
    case SL_CFG_T_STRLIST: {
      const struct sl_strlist *l = (const void *)slot;
      fputs(" [", out);
      for (size_t i = 0; i < l->n; i++) {
        if (i)
          fputs(", ", out);
        put_str(out, l->v[i]);
      }
      fputs("]\n", out);
      break;
    }
    case SL_CFG_T_STRMAP: {
      const struct sl_strmap *m = (const void *)slot;
      if (!m->n) {
        fputs(" {}\n", out);
        break;
      }
      fputc('\n', out);
      for (size_t i = 0; i < m->n; i++) {
        indent_to(out, indent + 2);
        put_str(out, m->keys[i]);
        fputc(':', out);
        if (sl_cfg_secret_name(m->keys[i])) {
          fputs(" " MASK "\n", out);
        } else {
          fputc(' ', out);
          put_str(out, m->values[i]);
          fputc('\n', out);
        }
      }
      break;
    }
    case SL_CFG_T_SECTION:
      fputc('\n', out);
      sl_cfg_print(out, t->section, slot, indent + 2);
      break;
    case SL_CFG_T_NODE:
      sl_cfg_print_node(out, *(const struct sl_cfg_node *const *)slot,
                        indent + 2);
      break;
    }
  }
}
