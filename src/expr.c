/*
 * expr.c - the expression language (see expr.h for the language itself).
 *
 * Sections: storage, lexer, parser (Pratt), static checks and constant
 * folding, evaluator, functions, public API.
 *
 * sl_expr_parse lexes the whole source into a token array, then a Pratt
 * parser builds the AST. Every node is checked as it is built: static
 * types flow bottom-up so that type errors visible without data (literal
 * operands, results of functions, metadata) are reported with the column
 * of the operator, and nodes whose operands are all literals are folded
 * into literals by running the evaluator once at parse time.
 *
 * Every allocation of a parsed expression (nodes, child arrays, strings)
 * is recorded in the expression, so that a parse error anywhere frees it
 * all with one loop and the AST never needs a recursive free.
 *
 * Evaluation only reads the AST and never calls malloc (except
 * to_string() of a JSON object or array, which goes through cJSON):
 * computed strings go into ctx->arena.
 */
#include "expr.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Deepest AST and deepest parser recursion accepted: the evaluator
 * recurses once per level, on worker threads of bounded stack. && and ||
 * chains are flattened, so long `a || b || c ...` do not count. */
#define MAX_DEPTH 256
/* Longest source accepted (columns are ints). */
#define MAX_SRC (1u << 20)

/* ---------------------------------------------------------------- storage */

enum nkind {
  NK_LIT,
  NK_FIELD,  /* segs[0..nsegs) */
  NK_META,   /* op: enum meta */
  NK_HEADER, /* segs[0]: header name */
  NK_NOT,
  NK_NEG,
  NK_BIN, /* op: enum binop */
  NK_AND, /* n-ary, three-valued */
  NK_OR,
  NK_IN,  /* kids[0] in [kids[1..]] */
  NK_CALL /* op: enum fn */
};

enum binop {
  B_ADD,
  B_SUB,
  B_MUL,
  B_DIV,
  B_MOD,
  B_EQ,
  B_NE,
  B_LT,
  B_LE,
  B_GT,
  B_GE
};

static const char *const binop_name[] = {
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">="};

enum meta { M_KEY, M_TOPIC, M_PARTITION, M_OFFSET, M_TIMESTAMP };

struct node {
  enum nkind kind;
  int op;    /* enum binop, enum meta or enum fn */
  int stype; /* static type (enum sl_vtype) when known, else -1 */
  int col;   /* column of the operator, call or token */
  int start; /* column of the node's first token */
  int depth; /* 1 for leaves */
  struct sl_value lit;
  char **segs; /* NUL-terminated path segments */
  size_t nsegs;
  struct node **kids;
  size_t nkids, capkids;
};

struct sl_expr {
  struct node *root;
  void **allocs; /* everything above, freed in one loop */
  size_t nallocs, capallocs;
};

/* A zeroed allocation owned by the expression. */
static void *ex_alloc(struct sl_expr *e, size_t n) {
  if (e->nallocs == e->capallocs) {
    e->capallocs = e->capallocs ? e->capallocs * 2 : 32;
    e->allocs = sl_realloc(e->allocs, e->capallocs * sizeof(*e->allocs));
  }
  void *p = sl_calloc(1, n ? n : 1);
  e->allocs[e->nallocs++] = p;
  return p;
}

static char *ex_strndup(struct sl_expr *e, const char *s, size_t n) {
  char *p = ex_alloc(e, n + 1);
  memcpy(p, s, n);
  return p;
}

/* ------------------------------------------------------------------ lexer */

enum tok {
  T_EOF,
  T_INT,
  T_FLOAT,
  T_STR,
  T_IDENT,
  T_QNAME, /* `quoted name` */
  T_META,  /* @name */
  T_LPAREN,
  T_RPAREN,
  T_LBRACK,
  T_RBRACK,
  T_COMMA,
  T_DOT,
  T_OR,
  T_AND,
  T_NOT,
  T_EQ,
  T_NE,
  T_LT,
  T_LE,
  T_GT,
  T_GE,
  T_PLUS,
  T_MINUS,
  T_STAR,
  T_SLASH,
  T_PERCENT,
  T_TRUE,
  T_FALSE,
  T_NULL,
  T_IN
};

struct token {
  enum tok t;
  int col;
  const char *p; /* source text */
  size_t n;
  uint64_t u; /* T_INT: magnitude, at most 2^63 */
  double f;   /* T_FLOAT */
  char *s;    /* T_STR, T_QNAME: decoded, NUL-terminated */
  size_t sn;
};

struct parser {
  const char *src;
  struct sl_expr *e;
  struct token *toks;
  size_t ntoks, captoks, pos;
  struct sl_error *err;
  int err_col;
  bool failed;
  int depth;
  struct sl_arena fold; /* strings computed while folding */
};

/* Records the first error as "column C: message"; returns NULL so that
 * node-returning functions can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static void *
fail(struct parser *p, int col, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  if (p->failed)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  p->failed = true;
  p->err_col = col;
  sl_error_set(p->err, SL_ERR_CONFIG, "column %d: %s", col, msg);
  return NULL;
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
static bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_ident_char(char c) {
  return is_ident_start(c) || is_digit(c);
}
static int hex_val(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static void push_tok(struct parser *p, const struct token *t) {
  if (p->ntoks == p->captoks) {
    p->captoks = p->captoks ? p->captoks * 2 : 16;
    p->toks = sl_realloc(p->toks, p->captoks * sizeof(*p->toks));
  }
  p->toks[p->ntoks++] = *t;
}

/* Integers are read exactly (up to 2^63, the magnitude of INT64_MIN which
 * only a unary minus may use); anything with a fraction or an exponent is a
 * float. A number glued to a name ("12ab", "1.x") is an error rather than
 * two tokens. */
static int lex_number(struct parser *p, size_t *ip, struct token *t) {
  const char *s = p->src;
  size_t i = *ip;
  bool is_float = false, big = false;
  uint64_t u = 0;
  while (is_digit(s[i])) {
    unsigned d = (unsigned)(s[i] - '0');
    if (u > ((UINT64_C(1) << 63) - d) / 10)
      big = true;
    else
      u = u * 10 + d;
    i++;
  }
  if (s[i] == '.') {
    if (!is_digit(s[i + 1])) {
      fail(p, t->col, "invalid number '%.*s'", (int)(i + 1 - *ip), s + *ip);
      return -1;
    }
    i++;
    while (is_digit(s[i]))
      i++;
    is_float = true;
  }
  if (s[i] == 'e' || s[i] == 'E') {
    size_t j = i + 1;
    if (s[j] == '+' || s[j] == '-')
      j++;
    if (!is_digit(s[j])) {
      fail(p, t->col, "invalid number '%.*s'", (int)(j - *ip), s + *ip);
      return -1;
    }
    while (is_digit(s[j]))
      j++;
    i = j;
    is_float = true;
  }
  if (is_ident_char(s[i]) || s[i] == '.') {
    size_t j = i;
    while (is_ident_char(s[j]) || s[j] == '.')
      j++;
    fail(p, t->col, "invalid number '%.*s'", (int)SL_MIN(j - *ip, 40), s + *ip);
    return -1;
  }
  if (is_float) {
    t->t = T_FLOAT;
    t->f = strtod(s + *ip, NULL);
    if (!isfinite(t->f)) {
      fail(p, t->col, "number out of range");
      return -1;
    }
  } else {
    if (big) {
      fail(p, t->col, "integer literal too large");
      return -1;
    }
    t->t = T_INT;
    t->u = u;
  }
  *ip = i;
  return 0;
}

/* Appends code point cp to out as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Reads 4 hex digits at s, or returns -1. */
static long hex4(const char *s) {
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hex_val(s[k]);
    if (h < 0)
      return -1;
    v = v * 16 + h;
  }
  return v;
}

/* A quoted string; the decoded text is never longer than the source
 * text, so one allocation of the source length suffices. */
static int lex_string(struct parser *p, size_t *ip, struct token *t) {
  const char *s = p->src;
  char quote = s[*ip];
  size_t i = *ip + 1, end = i;
  while (s[end] && s[end] != quote)
    end += (s[end] == '\\' && s[end + 1]) ? 2 : 1;
  if (!s[end]) {
    fail(p, t->col, "unterminated string");
    return -1;
  }
  char *out = ex_alloc(p->e, end - i + 1);
  size_t n = 0;
  while (i < end) {
    if (s[i] != '\\') {
      out[n++] = s[i++];
      continue;
    }
    int bcol = (int)i + 1;
    char c = s[i + 1];
    i += 2;
    switch (c) {
    case '"':
    case '\'':
    case '\\':
    case '/':
      out[n++] = c;
      break;
    case 'n':
      out[n++] = '\n';
      break;
    case 't':
      out[n++] = '\t';
      break;
    case 'r':
      out[n++] = '\r';
      break;
    case 'u': {
      long cp = hex4(s + i);
      if (cp < 0) {
        fail(p, bcol, "invalid \\u escape: expected 4 hex digits");
        return -1;
      }
      i += 4;
      if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(p, bcol, "invalid \\u escape: unpaired surrogate");
        return -1;
      }
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = (s[i] == '\\' && s[i + 1] == 'u') ? hex4(s + i + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          fail(p, bcol, "invalid \\u escape: unpaired surrogate");
          return -1;
        }
        i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (cp == 0) {
        fail(p, bcol, "\\u0000 is not allowed in a string");
        return -1;
      }
      n += put_utf8(out + n, (uint32_t)cp);
      break;
    }
    default:
      if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F)
        fail(p, bcol, "invalid escape '\\%c'", c);
      else
        fail(p, bcol, "invalid escape");
      return -1;
    }
  }
  t->t = T_STR;
  t->s = out;
  t->sn = n;
  *ip = end + 1;
  return 0;
}

static int lex_qname(struct parser *p, size_t *ip, struct token *t) {
  const char *s = p->src;
  size_t i = *ip + 1, end = i;
  while (s[end] && s[end] != '`')
    end++;
  if (!s[end]) {
    fail(p, t->col, "unterminated quoted name");
    return -1;
  }
  if (end == i) {
    fail(p, t->col, "empty quoted name");
    return -1;
  }
  t->t = T_QNAME;
  t->s = ex_strndup(p->e, s + i, end - i);
  t->sn = end - i;
  *ip = end + 1;
  return 0;
}

static enum tok keyword(const char *s, size_t n) {
  static const struct {
    const char *w;
    enum tok t;
  } kw[] = {
      {"true", T_TRUE}, {"false", T_FALSE}, {"null", T_NULL}, {"in", T_IN}};
  for (size_t k = 0; k < SL_ARRAY_LEN(kw); k++)
    if (strlen(kw[k].w) == n && !memcmp(kw[k].w, s, n))
      return kw[k].t;
  return T_IDENT;
}

/* Operators and punctuation: returns the token and its length, 0 when c
 * starts none. */
static size_t lex_punct(const char *s, enum tok *t) {
  char c = s[0], d = s[1];
  switch (c) {
  case '(':
    *t = T_LPAREN;
    return 1;
  case ')':
    *t = T_RPAREN;
    return 1;
  case '[':
    *t = T_LBRACK;
    return 1;
  case ']':
    *t = T_RBRACK;
    return 1;
  case ',':
    *t = T_COMMA;
    return 1;
  case '.':
    *t = T_DOT;
    return 1;
  case '+':
    *t = T_PLUS;
    return 1;
  case '-':
    *t = T_MINUS;
    return 1;
  case '*':
    *t = T_STAR;
    return 1;
  case '/':
    *t = T_SLASH;
    return 1;
  case '%':
    *t = T_PERCENT;
    return 1;
  case '|':
    *t = T_OR;
    return d == '|' ? 2 : 0;
  case '&':
    *t = T_AND;
    return d == '&' ? 2 : 0;
  case '=':
    *t = T_EQ;
    return d == '=' ? 2 : 0;
  case '!':
    *t = d == '=' ? T_NE : T_NOT;
    return d == '=' ? 2 : 1;
  case '<':
    *t = d == '=' ? T_LE : T_LT;
    return d == '=' ? 2 : 1;
  case '>':
    *t = d == '=' ? T_GE : T_GT;
    return d == '=' ? 2 : 1;
  }
  return 0;
}

/* Splits the whole source into p->toks, ending with T_EOF. */
static int lex(struct parser *p) {
  const char *s = p->src;
  size_t i = 0;
  for (;;) {
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
      i++;
    struct token t = {.col = (int)i + 1, .p = s + i};
    char c = s[i];
    int rc = 0;
    if (!c) {
      t.t = T_EOF;
      push_tok(p, &t);
      return 0;
    }
    if (is_digit(c)) {
      rc = lex_number(p, &i, &t);
    } else if (c == '"' || c == '\'') {
      rc = lex_string(p, &i, &t);
    } else if (c == '`') {
      rc = lex_qname(p, &i, &t);
    } else if (is_ident_start(c)) {
      size_t j = i;
      while (is_ident_char(s[j]))
        j++;
      t.t = keyword(s + i, j - i);
      i = j;
    } else if (c == '@') {
      size_t j = i + 1;
      if (!is_ident_start(s[j])) {
        fail(p, t.col, "expected a metadata name after '@'");
        return -1;
      }
      while (is_ident_char(s[j]))
        j++;
      t.t = T_META;
      i = j;
    } else {
      size_t n = lex_punct(s + i, &t.t);
      if (!n) {
        if (c == '=' || c == '&' || c == '|')
          fail(p, t.col, "unexpected '%c'; did you mean '%c%c'?", c, c, c);
        else if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F)
          fail(p, t.col, "unexpected character '%c'", c);
        else
          fail(p, t.col, "unexpected byte 0x%02X", (unsigned char)c);
        return -1;
      }
      i += n;
    }
    if (rc)
      return rc;
    t.n = (size_t)(s + i - t.p);
    push_tok(p, &t);
  }
}

/* ----------------------------------------------------------------- parser */

enum fn {
  F_LOWER,
  F_UPPER,
  F_LEN,
  F_CONTAINS,
  F_STARTS_WITH,
  F_ENDS_WITH,
  F_SUBSTR,
  F_COALESCE,
  F_TO_INT,
  F_TO_FLOAT,
  F_TO_STRING,
  F_NOW_MS
};

/* What an argument position accepts (besides null). */
enum argk {
  A_ANY,
  A_STR,
  A_INT,
  A_LEN, /* string, array or object */
  A_CONV /* number, string or bool */
};

struct fn_def {
  const char *name;
  int min, max; /* max -1: any number */
  int ret;      /* static result type, -1 when it depends on arguments */
  unsigned char arg[3];
};

static const struct fn_def fns[] = {
    [F_LOWER] = {"lower", 1, 1, SL_V_STR, {A_STR}},
    [F_UPPER] = {"upper", 1, 1, SL_V_STR, {A_STR}},
    [F_LEN] = {"len", 1, 1, SL_V_INT, {A_LEN}},
    [F_CONTAINS] = {"contains", 2, 2, SL_V_BOOL, {A_STR, A_STR}},
    [F_STARTS_WITH] = {"starts_with", 2, 2, SL_V_BOOL, {A_STR, A_STR}},
    [F_ENDS_WITH] = {"ends_with", 2, 2, SL_V_BOOL, {A_STR, A_STR}},
    [F_SUBSTR] = {"substr", 2, 3, SL_V_STR, {A_STR, A_INT, A_INT}},
    [F_COALESCE] = {"coalesce", 1, -1, -1, {A_ANY, A_ANY, A_ANY}},
    [F_TO_INT] = {"to_int", 1, 1, SL_V_INT, {A_CONV}},
    [F_TO_FLOAT] = {"to_float", 1, 1, SL_V_FLOAT, {A_CONV}},
    [F_TO_STRING] = {"to_string", 1, 1, SL_V_STR, {A_ANY}},
    [F_NOW_MS] = {"now_ms", 0, 0, SL_V_INT, {0}},
};

static const char *tname(int t) {
  static const char *const names[] = {"null",  "bool",   "int",
                                      "float", "string", "object or array"};
  return t >= 0 && t < (int)SL_ARRAY_LEN(names) ? names[t] : "unknown";
}

static bool arg_ok(int k, int t) {
  switch (k) {
  case A_STR:
    return t == SL_V_STR;
  case A_INT:
    return t == SL_V_INT;
  case A_LEN:
    return t == SL_V_STR || t == SL_V_JSON;
  case A_CONV:
    return t == SL_V_INT || t == SL_V_FLOAT || t == SL_V_STR || t == SL_V_BOOL;
  }
  return true;
}

static const char *arg_want(int k) {
  switch (k) {
  case A_STR:
    return "a string";
  case A_INT:
    return "an int";
  case A_LEN:
    return "a string, array or object";
  case A_CONV:
    return "a number, string or bool";
  }
  return "a value";
}

/* The message for argument i (0-based) of f having type `got`: one-argument
 * functions say "'lower' needs a string, got int". */
static void arg_msg(char *buf, size_t cap, enum fn f, size_t i,
                    const char *got) {
  int k = fns[f].arg[SL_MIN(i, (size_t)2)];
  if (fns[f].max == 1)
    snprintf(buf, cap, "'%s' needs %s, got %s", fns[f].name, arg_want(k), got);
  else
    snprintf(buf, cap, "'%s' argument %zu needs %s, got %s", fns[f].name, i + 1,
             arg_want(k), got);
}

static const struct token *peek(const struct parser *p) {
  return &p->toks[p->pos];
}

static const struct token *advance(struct parser *p) {
  const struct token *t = &p->toks[p->pos];
  if (t->t != T_EOF)
    p->pos++;
  return t;
}

/* "'text'" of a token for messages, or "the end" at the end. */
static const char *tok_text(const struct token *t, char *buf, size_t cap) {
  if (t->t == T_EOF)
    snprintf(buf, cap, "the end of the expression");
  else
    snprintf(buf, cap, "'%.*s'", (int)SL_MIN(t->n, (size_t)40), t->p);
  return buf;
}

static struct node *new_node(struct parser *p, enum nkind kind, int col,
                             int start) {
  struct node *n = ex_alloc(p->e, sizeof(*n));
  n->kind = kind;
  n->stype = -1;
  n->col = col;
  n->start = start;
  n->depth = 1;
  return n;
}

/* Appends a child, doubling the array (old arrays stay owned by the
 * expression: the total stays linear). */
static bool add_kid(struct parser *p, struct node *n, struct node *kid) {
  if (n->nkids == n->capkids) {
    size_t cap = n->capkids ? n->capkids * 2 : 2;
    struct node **k = ex_alloc(p->e, cap * sizeof(*k));
    if (n->nkids)
      memcpy(k, n->kids, n->nkids * sizeof(*k));
    n->kids = k;
    n->capkids = cap;
  }
  n->kids[n->nkids++] = kid;
  if (kid->depth + 1 > n->depth)
    n->depth = kid->depth + 1;
  if (n->depth > MAX_DEPTH) {
    fail(p, n->col, "expression is nested too deeply");
    return false;
  }
  return true;
}

static struct node *parse_expr(struct parser *p, int minbp);
static struct node *finish(struct parser *p, struct node *n);

/* Binding power of a binary operator token; 0 for anything else. */
static int binding(enum tok t) {
  switch (t) {
  case T_OR:
    return 1;
  case T_AND:
    return 2;
  case T_EQ:
  case T_NE:
  case T_LT:
  case T_LE:
  case T_GT:
  case T_GE:
  case T_IN:
    return 3;
  case T_PLUS:
  case T_MINUS:
    return 4;
  case T_STAR:
  case T_SLASH:
  case T_PERCENT:
    return 5;
  default:
    return 0;
  }
}
#define BP_UNARY 5 /* a unary operand takes no binary operator */

static struct node *lit_node(struct parser *p, const struct token *t,
                             struct sl_value v) {
  struct node *n = new_node(p, NK_LIT, t->col, t->col);
  n->lit = v;
  n->stype = (int)v.type;
  return n;
}

static bool is_name_tok(enum tok t) {
  return t == T_IDENT || t == T_QNAME || t == T_TRUE || t == T_FALSE ||
         t == T_NULL || t == T_IN;
}

static char *name_of(struct parser *p, const struct token *t) {
  return t->t == T_QNAME ? t->s : ex_strndup(p->e, t->p, t->n);
}

/* name (. name)*: the segments are counted first so that one array
 * holds them. */
static struct node *parse_field(struct parser *p) {
  const struct token *first = peek(p);
  size_t k = 1, j = p->pos + 1;
  while (p->toks[j].t == T_DOT && is_name_tok(p->toks[j + 1].t)) {
    k++;
    j += 2;
  }
  if (p->toks[j].t == T_DOT)
    return fail(p, p->toks[j + 1].col, "expected a field name after '.'");
  struct node *n = new_node(p, NK_FIELD, first->col, first->col);
  n->segs = ex_alloc(p->e, k * sizeof(*n->segs));
  n->nsegs = k;
  for (size_t i = 0; i < k; i++) {
    if (i)
      advance(p); /* the dot */
    n->segs[i] = name_of(p, advance(p));
  }
  return n;
}

static struct node *parse_meta(struct parser *p) {
  static const char *const names[] = {
      [M_KEY] = "key",
      [M_TOPIC] = "topic",
      [M_PARTITION] = "partition",
      [M_OFFSET] = "offset",
      [M_TIMESTAMP] = "timestamp",
  };
  static const int types[] = {SL_V_STR, SL_V_STR, SL_V_INT, SL_V_INT, SL_V_INT};
  const struct token *t = advance(p);
  const char *name = t->p + 1;
  size_t len = t->n - 1;
  for (size_t m = 0; m < SL_ARRAY_LEN(names); m++) {
    if (strlen(names[m]) == len && !memcmp(names[m], name, len)) {
      struct node *n = new_node(p, NK_META, t->col, t->col);
      n->op = (int)m;
      n->stype = types[m];
      return n;
    }
  }
  if (len == 7 && !memcmp(name, "headers", 7)) {
    if (peek(p)->t != T_DOT || !is_name_tok(p->toks[p->pos + 1].t))
      return fail(p, t->col, "'@headers' needs a header name: @headers.NAME");
    advance(p);
    struct node *n = new_node(p, NK_HEADER, t->col, t->col);
    n->segs = ex_alloc(p->e, sizeof(*n->segs));
    n->segs[0] = name_of(p, advance(p));
    n->nsegs = 1;
    n->stype = SL_V_STR;
    return n;
  }
  return fail(p, t->col,
              "unknown metadata field '@%.*s' (expected @key, @topic, "
              "@partition, @offset, @timestamp or @headers.NAME)",
              (int)SL_MIN(len, (size_t)40), name);
}

/* Edit distance for "did you mean": names are short, longer input is
 * never close to one. */
static size_t edit_distance(const char *a, size_t na, const char *b) {
  size_t nb = strlen(b), row[32];
  if (na >= 31 || nb >= 31)
    return SIZE_MAX;
  for (size_t j = 0; j <= nb; j++)
    row[j] = j;
  for (size_t i = 1; i <= na; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      best = SL_MIN(best, up + 1);
      best = SL_MIN(best, row[j - 1] + 1);
      row[j] = best;
      diag = up;
    }
  }
  return row[nb];
}

static struct node *unknown_function(struct parser *p, const struct token *t) {
  const char *best = NULL;
  size_t bestd = 3;
  for (size_t f = 0; f < SL_ARRAY_LEN(fns); f++) {
    size_t d = edit_distance(t->p, t->n, fns[f].name);
    if (d < bestd && d < t->n) {
      bestd = d;
      best = fns[f].name;
    }
  }
  if (best)
    return fail(p, t->col, "unknown function '%.*s'; did you mean '%s'?",
                (int)SL_MIN(t->n, (size_t)40), t->p, best);
  return fail(p, t->col, "unknown function '%.*s'",
              (int)SL_MIN(t->n, (size_t)40), t->p);
}

static struct node *parse_call(struct parser *p) {
  const struct token *name = advance(p);
  const struct token *lp = advance(p);
  int f = -1;
  for (size_t k = 0; k < SL_ARRAY_LEN(fns); k++)
    if (strlen(fns[k].name) == name->n &&
        !memcmp(fns[k].name, name->p, name->n))
      f = (int)k;
  if (f < 0)
    return unknown_function(p, name);
  struct node *n = new_node(p, NK_CALL, name->col, name->col);
  n->op = f;
  if (peek(p)->t == T_RPAREN) {
    advance(p);
  } else {
    for (;;) {
      struct node *arg = parse_expr(p, 0);
      if (!arg || !add_kid(p, n, arg))
        return NULL;
      const struct token *t = peek(p);
      if (t->t == T_COMMA) {
        advance(p);
        continue;
      }
      if (t->t == T_RPAREN) {
        advance(p);
        break;
      }
      char buf[64];
      return fail(p, t->col,
                  "expected ',' or ')' in the call to '%s' (opened at "
                  "column %d), got %s",
                  fns[f].name, lp->col, tok_text(t, buf, sizeof(buf)));
    }
  }
  const struct fn_def *d = &fns[f];
  int got = (int)n->nkids;
  if (got < d->min || (d->max >= 0 && got > d->max)) {
    if (d->max == 0)
      return fail(p, name->col, "'%s' takes no arguments, got %d", d->name,
                  got);
    if (d->max < 0)
      return fail(p, name->col, "'%s' takes at least %d argument%s, got %d",
                  d->name, d->min, d->min == 1 ? "" : "s", got);
    if (d->min == d->max)
      return fail(p, name->col, "'%s' takes %d argument%s, got %d", d->name,
                  d->min, d->min == 1 ? "" : "s", got);
    return fail(p, name->col, "'%s' takes %d or %d arguments, got %d", d->name,
                d->min, d->max, got);
  }
  return finish(p, n);
}

/* x in [a, b, ...]: the elements may be any expressions. */
static struct node *parse_in(struct parser *p, struct node *left,
                             const struct token *op) {
  if (peek(p)->t != T_LBRACK)
    return fail(p, peek(p)->col, "expected '[' after 'in'");
  const struct token *lb = advance(p);
  struct node *n = new_node(p, NK_IN, op->col, left->start);
  if (!add_kid(p, n, left))
    return NULL;
  if (peek(p)->t == T_RBRACK) {
    advance(p);
    return finish(p, n);
  }
  for (;;) {
    struct node *el = parse_expr(p, 0);
    if (!el || !add_kid(p, n, el))
      return NULL;
    const struct token *t = peek(p);
    if (t->t == T_COMMA) {
      advance(p);
      continue;
    }
    if (t->t == T_RBRACK) {
      advance(p);
      return finish(p, n);
    }
    char buf[64];
    return fail(p, t->col,
                "expected ',' or ']' in the list (opened at column %d), "
                "got %s",
                lb->col, tok_text(t, buf, sizeof(buf)));
  }
}

static struct node *parse_unary(struct parser *p) {
  const struct token *op = advance(p);
  /* -9223372036854775808 is INT64_MIN, whose magnitude no int holds. */
  if (op->t == T_MINUS && peek(p)->t == T_INT &&
      peek(p)->u == (UINT64_C(1) << 63)) {
    advance(p);
    struct node *n = lit_node(p, op, sl_int(INT64_MIN));
    return n;
  }
  struct node *x = parse_expr(p, BP_UNARY);
  if (!x)
    return NULL;
  struct node *n =
      new_node(p, op->t == T_NOT ? NK_NOT : NK_NEG, op->col, op->col);
  if (!add_kid(p, n, x))
    return NULL;
  return finish(p, n);
}

static struct node *parse_prefix(struct parser *p) {
  const struct token *t = peek(p);
  char buf[64];
  switch (t->t) {
  case T_INT:
    advance(p);
    if (t->u > (uint64_t)INT64_MAX)
      return fail(p, t->col, "integer literal too large");
    return lit_node(p, t, sl_int((int64_t)t->u));
  case T_FLOAT:
    advance(p);
    return lit_node(p, t, sl_float(t->f));
  case T_STR:
    advance(p);
    return lit_node(p, t, sl_str(t->s, t->sn));
  case T_TRUE:
  case T_FALSE:
    advance(p);
    return lit_node(p, t, sl_bool(t->t == T_TRUE));
  case T_NULL:
    advance(p);
    return lit_node(p, t, SL_NULL);
  case T_MINUS:
  case T_NOT:
    return parse_unary(p);
  case T_LPAREN: {
    advance(p);
    struct node *inner = parse_expr(p, 0);
    if (!inner)
      return NULL;
    const struct token *c = peek(p);
    if (c->t != T_RPAREN)
      return fail(p, c->col, "expected ')' to close '(' at column %d, got %s",
                  t->col, tok_text(c, buf, sizeof(buf)));
    advance(p);
    return inner;
  }
  case T_IDENT:
    if (p->toks[p->pos + 1].t == T_LPAREN)
      return parse_call(p);
    return parse_field(p);
  case T_QNAME:
    return parse_field(p);
  case T_META:
    return parse_meta(p);
  case T_LBRACK:
    return fail(p, t->col, "a list is only allowed after 'in'");
  default:
    break;
  }
  if (p->pos == 0) {
    if (t->t == T_EOF)
      return fail(p, t->col, "empty expression");
    return fail(p, t->col, "unexpected %s", tok_text(t, buf, sizeof(buf)));
  }
  const struct token *prev = &p->toks[p->pos - 1];
  return fail(p, t->col, "expected an expression after '%.*s'",
              (int)SL_MIN(prev->n, (size_t)40), prev->p);
}

static struct node *make_binary(struct parser *p, const struct token *op,
                                struct node *left, struct node *right) {
  if (op->t == T_AND || op->t == T_OR) {
    enum nkind k = op->t == T_AND ? NK_AND : NK_OR;
    struct node *n = left;
    /* Flatten chains: a && b && c is one node with three operands. */
    if (left->kind != k) {
      n = new_node(p, k, op->col, left->start);
      if (!add_kid(p, n, left))
        return NULL;
    }
    n->col = op->col; /* the operator that joined the newest operand */
    if (!add_kid(p, n, right))
      return NULL;
    return finish(p, n);
  }
  static const struct {
    enum tok t;
    enum binop b;
  } map[] = {{T_PLUS, B_ADD},  {T_MINUS, B_SUB},   {T_STAR, B_MUL},
             {T_SLASH, B_DIV}, {T_PERCENT, B_MOD}, {T_EQ, B_EQ},
             {T_NE, B_NE},     {T_LT, B_LT},       {T_LE, B_LE},
             {T_GT, B_GT},     {T_GE, B_GE}};
  struct node *n = new_node(p, NK_BIN, op->col, left->start);
  for (size_t k = 0; k < SL_ARRAY_LEN(map); k++)
    if (map[k].t == op->t)
      n->op = (int)map[k].b;
  if (!add_kid(p, n, left) || !add_kid(p, n, right))
    return NULL;
  return finish(p, n);
}

/* Pratt loop: a prefix expression, then binary operators binding tighter
 * than minbp. All binary operators are left-associative. */
static struct node *parse_expr(struct parser *p, int minbp) {
  if (++p->depth > MAX_DEPTH)
    return fail(p, peek(p)->col, "expression is nested too deeply");
  struct node *left = parse_prefix(p);
  while (left) {
    const struct token *op = peek(p);
    int bp = binding(op->t);
    if (bp <= minbp)
      break;
    advance(p);
    if (op->t == T_IN) {
      left = parse_in(p, left, op);
      continue;
    }
    struct node *right = parse_expr(p, bp);
    left = right ? make_binary(p, op, left, right) : NULL;
  }
  p->depth--;
  return left;
}

/* ------------------------------------------ static checks, constant folding */

static int ev(const struct node *n, const struct sl_eval_ctx *c,
              struct sl_value *out, struct sl_error *err);

static bool is_num_t(int t) {
  return t == SL_V_INT || t == SL_V_FLOAT;
}

/* "int and string" when both types are known, else the known one (the
 * caller knows at least one is wrong). */
static const char *got2(char *buf, size_t cap, int a, int b) {
  if (a >= 0 && b >= 0)
    snprintf(buf, cap, "%s and %s", tname(a), tname(b));
  else
    snprintf(buf, cap, "%s", tname(a >= 0 ? a : b));
  return buf;
}

/* Type checks of a unary or binary operator over the static types of its
 * operands; sets the node's static type. */
static bool check_op(struct parser *p, struct node *n) {
  char buf[64];
  int a = n->kids[0]->stype;
  int b = n->nkids > 1 ? n->kids[1]->stype : -1;
  bool has_null = a == SL_V_NULL || b == SL_V_NULL;
  if (n->kind == NK_NOT) {
    if (a >= 0 && a != SL_V_NULL && a != SL_V_BOOL)
      return fail(p, n->col, "'!' needs a bool, got %s", tname(a));
    n->stype = a == SL_V_NULL ? SL_V_NULL : SL_V_BOOL;
    return true;
  }
  if (n->kind == NK_NEG) {
    if (a >= 0 && a != SL_V_NULL && !is_num_t(a))
      return fail(p, n->col, "'-' needs a number, got %s", tname(a));
    n->stype = a;
    return true;
  }
  const char *name = binop_name[n->op];
  switch (n->op) {
  case B_EQ:
  case B_NE:
    n->stype = SL_V_BOOL;
    return true;
  case B_LT:
  case B_LE:
  case B_GT:
  case B_GE: {
    bool known = a > SL_V_NULL && b > SL_V_NULL;
    bool same = (is_num_t(a) && is_num_t(b)) || a == b;
    if (known && !same)
      return fail(p, n->col, "'%s' cannot compare %s and %s", name, tname(a),
                  tname(b));
    n->stype = has_null ? SL_V_NULL : SL_V_BOOL;
    return true;
  }
  case B_ADD: {
    bool bad_a = a > SL_V_NULL && !is_num_t(a) && a != SL_V_STR;
    bool bad_b = b > SL_V_NULL && !is_num_t(b) && b != SL_V_STR;
    bool mixed = a > SL_V_NULL && b > SL_V_NULL &&
                 !(is_num_t(a) && is_num_t(b)) && a != b;
    if (bad_a || bad_b || mixed)
      return fail(p, n->col, "'+' needs two numbers or two strings, got %s",
                  got2(buf, sizeof(buf), a, b));
    if (has_null)
      n->stype = SL_V_NULL;
    else if (a == SL_V_STR || b == SL_V_STR)
      n->stype = SL_V_STR;
    else if (a == SL_V_FLOAT || b == SL_V_FLOAT)
      n->stype = SL_V_FLOAT;
    else if (a == SL_V_INT && b == SL_V_INT)
      n->stype = SL_V_INT;
    return true;
  }
  default: { /* - * / % */
    bool bad_a = a > SL_V_NULL && !is_num_t(a);
    bool bad_b = b > SL_V_NULL && !is_num_t(b);
    if (bad_a || bad_b)
      return fail(p, n->col, "'%s' needs numbers, got %s", name,
                  got2(buf, sizeof(buf), a, b));
    if (has_null)
      n->stype = SL_V_NULL;
    else if (n->op == B_DIV || a == SL_V_FLOAT || b == SL_V_FLOAT)
      n->stype = SL_V_FLOAT;
    else if (a == SL_V_INT && b == SL_V_INT)
      n->stype = SL_V_INT;
    return true;
  }
  }
}

/* && and ||: called each time an operand joins the chain; checks the
 * operands that joined (the first two together). */
static bool check_logic(struct parser *p, struct node *n) {
  char buf[64];
  const char *name = n->kind == NK_AND ? "&&" : "||";
  int b = n->kids[n->nkids - 1]->stype;
  int a = n->nkids == 2 ? n->kids[0]->stype : -1;
  bool bad_a = a > SL_V_NULL && a != SL_V_BOOL;
  bool bad_b = b > SL_V_NULL && b != SL_V_BOOL;
  if (bad_a || bad_b)
    return fail(p, n->col, "'%s' needs bools, got %s", name,
                got2(buf, sizeof(buf), a, b));
  n->stype = SL_V_BOOL;
  return true;
}

static bool check_call(struct parser *p, struct node *n) {
  const struct fn_def *d = &fns[n->op];
  char msg[160];
  bool any_null = false;
  for (size_t i = 0; i < n->nkids; i++) {
    int t = n->kids[i]->stype;
    any_null |= t == SL_V_NULL;
    if (t > SL_V_NULL && !arg_ok(d->arg[SL_MIN(i, (size_t)2)], t)) {
      arg_msg(msg, sizeof(msg), n->op, i, tname(t));
      return fail(p, n->kids[i]->start, "%s", msg);
    }
  }
  if (n->op == F_COALESCE) {
    /* The common non-null type of the arguments, when they agree. */
    int t = SL_V_NULL;
    for (size_t i = 0; i < n->nkids; i++) {
      int k = n->kids[i]->stype;
      if (k == SL_V_NULL)
        continue;
      if (k < 0 || (t != SL_V_NULL && t != k)) {
        t = -1;
        break;
      }
      t = k;
    }
    n->stype = t;
  } else {
    n->stype = any_null ? SL_V_NULL : d->ret;
  }
  return true;
}

/* Whether a node may be computed at parse time: all operands literal and
 * no dependence on the clock. */
static bool foldable(const struct node *n) {
  if (n->kind == NK_CALL && n->op == F_NOW_MS)
    return false;
  for (size_t i = 0; i < n->nkids; i++)
    if (n->kids[i]->kind != NK_LIT)
      return false;
  return true;
}

/* Checks a freshly built operator, call or list node, then folds it into a
 * literal when it can; evaluation errors of literal operands (1 / 0,
 * to_int("x")) become parse errors at the node's column. */
static struct node *finish(struct parser *p, struct node *n) {
  bool ok;
  switch (n->kind) {
  case NK_NOT:
  case NK_NEG:
  case NK_BIN:
    ok = check_op(p, n);
    break;
  case NK_AND:
  case NK_OR:
    ok = check_logic(p, n);
    break;
  case NK_CALL:
    ok = check_call(p, n);
    break;
  case NK_IN:
    n->stype = n->kids[0]->stype == SL_V_NULL ? SL_V_NULL : SL_V_BOOL;
    ok = true;
    break;
  default:
    return n;
  }
  if (!ok)
    return NULL;
  if (!foldable(n))
    return n;
  struct sl_eval_ctx c = {.arena = &p->fold};
  struct sl_error e;
  struct sl_value v;
  if (ev(n, &c, &v, &e) != 0)
    return fail(p, n->col, "%s", e.msg);
  if (v.type == SL_V_STR)
    v.u.s.p = ex_strndup(p->e, v.u.s.p, v.u.s.n);
  n->kind = NK_LIT;
  n->lit = v;
  n->stype = (int)v.type;
  n->nkids = 0;
  n->depth = 1;
  return n;
}

/* -------------------------------------------------------------- evaluator */

static int type_err(struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int type_err(struct sl_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_error_vset(err, SL_ERR_INVAL, fmt, ap);
  va_end(ap);
  return SL_ERR_INVAL;
}

static struct sl_value get_field(const cJSON *row, char *const *segs,
                                 size_t n) {
  const cJSON *j = row;
  for (size_t i = 0; i < n; i++) {
    if (!j || !cJSON_IsObject(j))
      return SL_NULL;
    j = cJSON_GetObjectItemCaseSensitive(j, segs[i]);
  }
  return sl_value_from_json(j);
}

static struct sl_value get_meta(const struct sl_record *r, int m) {
  if (!r)
    return SL_NULL;
  switch (m) {
  case M_KEY:
    return r->key ? sl_str(r->key, r->key_len) : SL_NULL;
  case M_TOPIC:
    return r->topic ? sl_str(r->topic, strlen(r->topic)) : SL_NULL;
  case M_PARTITION:
    return sl_int(r->partition);
  case M_OFFSET:
    return sl_int(r->offset);
  case M_TIMESTAMP:
    return r->timestamp >= 0 ? sl_int(r->timestamp) : SL_NULL;
  }
  return SL_NULL;
}

static struct sl_value get_header(const struct sl_eval_ctx *c,
                                  const char *name) {
  const char *v = NULL;
  size_t len = 0;
  if (!c->header || !c->rec || c->header(c->rec, name, &v, &len) != 0 || !v)
    return SL_NULL;
  return sl_str(v, len);
}

/* Arena memory for a computed string; an empty result needs none. */
static char *out_buf(const struct sl_eval_ctx *c, size_t n,
                     struct sl_error *err) {
  if (!c->arena) {
    type_err(err, "no arena to hold a computed string");
    return NULL;
  }
  return sl_arena_alloc(c->arena, n ? n : 1);
}

static double as_f(const struct sl_value *v) {
  return v->type == SL_V_INT ? (double)v->u.i : v->u.f;
}

static bool is_num_v(const struct sl_value *v) {
  return v->type == SL_V_INT || v->type == SL_V_FLOAT;
}

/* + - * / % over two non-null values. */
static int arith(int op, const struct sl_value *a, const struct sl_value *b,
                 const struct sl_eval_ctx *c, struct sl_value *out,
                 struct sl_error *err) {
  const char *name = binop_name[op];
  if (op == B_ADD && a->type == SL_V_STR && b->type == SL_V_STR) {
    size_t n = a->u.s.n + b->u.s.n;
    if (!n) {
      *out = sl_str("", 0);
      return 0;
    }
    char *s = out_buf(c, n, err);
    if (!s)
      return SL_ERR_INVAL;
    if (a->u.s.n)
      memcpy(s, a->u.s.p, a->u.s.n);
    if (b->u.s.n)
      memcpy(s + a->u.s.n, b->u.s.p, b->u.s.n);
    *out = sl_str(s, n);
    return 0;
  }
  if (!is_num_v(a) || !is_num_v(b)) {
    if (op == B_ADD)
      return type_err(err,
                      "'+' needs two numbers or two strings, got %s and %s",
                      sl_vtype_name(a), sl_vtype_name(b));
    return type_err(err, "'%s' needs numbers, got %s and %s", name,
                    sl_vtype_name(a), sl_vtype_name(b));
  }
  if ((op == B_DIV || op == B_MOD) &&
      (b->type == SL_V_INT ? b->u.i == 0 : b->u.f == 0))
    return type_err(err, "division by zero in '%s'", name);
  if (a->type == SL_V_INT && b->type == SL_V_INT && op != B_DIV) {
    int64_t x = a->u.i, y = b->u.i, r = 0;
    bool ovf = false;
    switch (op) {
    case B_ADD:
      ovf = __builtin_add_overflow(x, y, &r);
      break;
    case B_SUB:
      ovf = __builtin_sub_overflow(x, y, &r);
      break;
    case B_MUL:
      ovf = __builtin_mul_overflow(x, y, &r);
      break;
    case B_MOD:
      r = y == -1 ? 0 : x % y; /* INT64_MIN % -1 traps in C */
      break;
    }
    if (ovf)
      return type_err(err, "integer overflow in '%s'", name);
    *out = sl_int(r);
    return 0;
  }
  double x = as_f(a), y = as_f(b), r = 0;
  switch (op) {
  case B_ADD:
    r = x + y;
    break;
  case B_SUB:
    r = x - y;
    break;
  case B_MUL:
    r = x * y;
    break;
  case B_DIV:
    r = x / y;
    break;
  case B_MOD:
    r = fmod(x, y);
    break;
  }
  *out = sl_float(r);
  return 0;
}

static int ev_bin(const struct node *n, const struct sl_eval_ctx *c,
                  struct sl_value *out, struct sl_error *err) {
  struct sl_value a, b;
  int rc = ev(n->kids[0], c, &a, err);
  if (!rc)
    rc = ev(n->kids[1], c, &b, err);
  if (rc)
    return rc;
  if (n->op == B_EQ || n->op == B_NE) {
    *out = sl_bool(sl_value_equal(&a, &b) == (n->op == B_EQ));
    return 0;
  }
  if (a.type == SL_V_NULL || b.type == SL_V_NULL) {
    *out = SL_NULL;
    return 0;
  }
  if (n->op >= B_LT) {
    int cmp = sl_value_cmp(&a, &b);
    if (cmp == -2)
      return type_err(err, "'%s' cannot compare %s and %s", binop_name[n->op],
                      sl_vtype_name(&a), sl_vtype_name(&b));
    bool r = n->op == B_LT   ? cmp < 0
             : n->op == B_LE ? cmp <= 0
             : n->op == B_GT ? cmp > 0
                             : cmp >= 0;
    *out = sl_bool(r);
    return 0;
  }
  return arith(n->op, &a, &b, c, out, err);
}

static int ev_unary(const struct node *n, const struct sl_eval_ctx *c,
                    struct sl_value *out, struct sl_error *err) {
  struct sl_value a;
  int rc = ev(n->kids[0], c, &a, err);
  if (rc)
    return rc;
  if (a.type == SL_V_NULL) {
    *out = SL_NULL;
    return 0;
  }
  if (n->kind == NK_NOT) {
    if (a.type != SL_V_BOOL)
      return type_err(err, "'!' needs a bool, got %s", sl_vtype_name(&a));
    *out = sl_bool(!a.u.b);
    return 0;
  }
  if (a.type == SL_V_INT) {
    if (a.u.i == INT64_MIN)
      return type_err(err, "integer overflow in '-'");
    *out = sl_int(-a.u.i);
    return 0;
  }
  if (a.type == SL_V_FLOAT) {
    *out = sl_float(-a.u.f);
    return 0;
  }
  return type_err(err, "'-' needs a number, got %s", sl_vtype_name(&a));
}

/* Three-valued && / || over any number of operands, left to right: a
 * deciding operand (false for &&, true for ||) stops the evaluation. */
static int ev_logic(const struct node *n, const struct sl_eval_ctx *c,
                    struct sl_value *out, struct sl_error *err) {
  bool is_and = n->kind == NK_AND, saw_null = false;
  for (size_t i = 0; i < n->nkids; i++) {
    struct sl_value v;
    int rc = ev(n->kids[i], c, &v, err);
    if (rc)
      return rc;
    if (v.type == SL_V_NULL) {
      saw_null = true;
      continue;
    }
    if (v.type != SL_V_BOOL)
      return type_err(err, "'%s' needs bools, got %s", is_and ? "&&" : "||",
                      sl_vtype_name(&v));
    if (v.u.b != is_and) {
      *out = sl_bool(!is_and);
      return 0;
    }
  }
  *out = saw_null ? SL_NULL : sl_bool(is_and);
  return 0;
}

static int ev_in(const struct node *n, const struct sl_eval_ctx *c,
                 struct sl_value *out, struct sl_error *err) {
  struct sl_value x;
  int rc = ev(n->kids[0], c, &x, err);
  if (rc)
    return rc;
  if (x.type == SL_V_NULL) {
    *out = SL_NULL;
    return 0;
  }
  for (size_t i = 1; i < n->nkids; i++) {
    struct sl_value v;
    if ((rc = ev(n->kids[i], c, &v, err)))
      return rc;
    if (sl_value_equal(&x, &v)) {
      *out = sl_bool(true);
      return 0;
    }
  }
  *out = sl_bool(false);
  return 0;
}

/* -------------------------------------------------------------- functions */

static bool mem_eq(const char *a, const char *b, size_t n) {
  return n == 0 || memcmp(a, b, n) == 0;
}

/* lower/upper: returns the input itself when no byte changes. */
static int fn_case(const struct sl_value *s, bool up,
                   const struct sl_eval_ctx *c, struct sl_value *out,
                   struct sl_error *err) {
  const char *p = s->u.s.p;
  size_t n = s->u.s.n, i = 0;
  char lo = up ? 'a' : 'A', hi = up ? 'z' : 'Z';
  while (i < n && !(p[i] >= lo && p[i] <= hi))
    i++;
  if (i == n) {
    *out = *s;
    return 0;
  }
  char *d = out_buf(c, n, err);
  if (!d)
    return SL_ERR_INVAL;
  memcpy(d, p, n);
  for (; i < n; i++)
    if (d[i] >= lo && d[i] <= hi)
      d[i] = (char)(d[i] ^ 0x20);
  *out = sl_str(d, n);
  return 0;
}

static void trim(const char **p, size_t *n) {
  while (*n && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) {
    (*p)++;
    (*n)--;
  }
  while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' ||
                (*p)[*n - 1] == '\n' || (*p)[*n - 1] == '\r'))
    (*n)--;
}

/* A decimal integer with optional sign, surrounding blanks allowed. */
static bool parse_int(const char *p, size_t n, int64_t *out) {
  trim(&p, &n);
  bool neg = false;
  if (n && (*p == '+' || *p == '-')) {
    neg = *p == '-';
    p++;
    n--;
  }
  if (!n)
    return false;
  uint64_t u = 0, lim = neg ? UINT64_C(1) << 63 : (uint64_t)INT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(p[i]))
      return false;
    unsigned d = (unsigned)(p[i] - '0');
    if (u > (lim - d) / 10)
      return false;
    u = u * 10 + d;
  }
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return true;
}

/* A finite decimal number (no hex, inf or nan), blanks allowed. */
static bool parse_float(const char *p, size_t n, double *out) {
  char buf[128];
  trim(&p, &n);
  if (!n || n >= sizeof(buf))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_digit(p[i]) && !strchr("+-.eE", p[i]))
      return false;
  memcpy(buf, p, n);
  buf[n] = '\0';
  char *end;
  double d = strtod(buf, &end);
  if (end != buf + n || !isfinite(d))
    return false;
  *out = d;
  return true;
}

static int fn_to_string(const struct sl_value *v, const struct sl_eval_ctx *c,
                        struct sl_value *out, struct sl_error *err) {
  char tmp[40];
  int n;
  switch (v->type) {
  case SL_V_NULL:
  case SL_V_STR:
    *out = *v;
    return 0;
  case SL_V_BOOL:
    *out = v->u.b ? sl_str("true", 4) : sl_str("false", 5);
    return 0;
  case SL_V_INT:
    n = snprintf(tmp, sizeof(tmp), "%" PRId64, v->u.i);
    break;
  case SL_V_FLOAT:
    n = sl_fmt_double(v->u.f, tmp, sizeof(tmp));
    break;
  case SL_V_JSON: {
    char *s = cJSON_PrintUnformatted(v->u.json);
    if (!s)
      return type_err(err, "'to_string' could not serialize the %s",
                      sl_vtype_name(v));
    size_t len = strlen(s);
    char *d = out_buf(c, len, err);
    if (d)
      memcpy(d, s, len);
    cJSON_free(s);
    if (!d)
      return SL_ERR_INVAL;
    *out = sl_str(d, len);
    return 0;
  }
  default:
    return type_err(err, "'to_string' got a bad value");
  }
  char *d = out_buf(c, (size_t)n, err);
  if (!d)
    return SL_ERR_INVAL;
  memcpy(d, tmp, (size_t)n);
  *out = sl_str(d, (size_t)n);
  return 0;
}

static int fn_to_num(enum fn f, const struct sl_value *v, struct sl_value *out,
                     struct sl_error *err) {
  bool to_int = f == F_TO_INT;
  switch (v->type) {
  case SL_V_BOOL:
    *out = to_int ? sl_int(v->u.b) : sl_float(v->u.b);
    return 0;
  case SL_V_INT:
    *out = to_int ? *v : sl_float((double)v->u.i);
    return 0;
  case SL_V_FLOAT:
    if (!to_int) {
      *out = *v;
      return 0;
    }
    /* [-2^63, 2^63) holds exactly the truncations that fit an int64. */
    if (!isfinite(v->u.f) || v->u.f < -9223372036854775808.0 ||
        v->u.f >= 9223372036854775808.0) {
      char buf[40];
      sl_fmt_double(v->u.f, buf, sizeof(buf));
      return type_err(err, "'to_int' cannot convert %s to an int", buf);
    }
    *out = sl_int((int64_t)v->u.f);
    return 0;
  case SL_V_STR: {
    int64_t i;
    double d;
    if (to_int ? parse_int(v->u.s.p, v->u.s.n, &i)
               : parse_float(v->u.s.p, v->u.s.n, &d)) {
      *out = to_int ? sl_int(i) : sl_float(d);
      return 0;
    }
    return type_err(err, "'%s' cannot parse \"%.*s\"%s as %s", fns[f].name,
                    (int)SL_MIN(v->u.s.n, (size_t)40), v->u.s.p,
                    v->u.s.n > 40 ? "..." : "", to_int ? "an int" : "a float");
  }
  default:
    return type_err(err, "'%s' needs a number, string or bool, got %s",
                    fns[f].name, sl_vtype_name(v));
  }
}

static int fn_substr(const struct sl_value *v, size_t nargs,
                     struct sl_value *out) {
  int64_t n = (int64_t)v[0].u.s.n, start = v[1].u.i;
  if (start < 0)
    start = start < -n ? 0 : start + n;
  if (start > n)
    start = n;
  int64_t take = n - start;
  if (nargs > 2)
    take = v[2].u.i < 0 ? 0 : SL_MIN(v[2].u.i, take);
  *out = sl_str(v[0].u.s.p + start, (size_t)take);
  return 0;
}

static int ev_call(const struct node *n, const struct sl_eval_ctx *c,
                   struct sl_value *out, struct sl_error *err) {
  struct sl_value v[3];
  int rc;
  if (n->op == F_COALESCE) {
    for (size_t i = 0; i < n->nkids; i++) {
      if ((rc = ev(n->kids[i], c, out, err)))
        return rc;
      if (out->type != SL_V_NULL)
        return 0;
    }
    *out = SL_NULL;
    return 0;
  }
  if (n->op == F_NOW_MS) {
    *out = sl_int(c->now_ms);
    return 0;
  }
  bool any_null = false;
  for (size_t i = 0; i < n->nkids; i++) {
    if ((rc = ev(n->kids[i], c, &v[i], err)))
      return rc;
    any_null |= v[i].type == SL_V_NULL;
  }
  if (any_null) {
    *out = SL_NULL;
    return 0;
  }
  for (size_t i = 0; i < n->nkids; i++) {
    if (!arg_ok(fns[n->op].arg[i], (int)v[i].type)) {
      char msg[160];
      arg_msg(msg, sizeof(msg), n->op, i, sl_vtype_name(&v[i]));
      return type_err(err, "%s", msg);
    }
  }
  const struct sl_value *s = &v[0], *t = &v[1];
  switch (n->op) {
  case F_LOWER:
  case F_UPPER:
    return fn_case(s, n->op == F_UPPER, c, out, err);
  case F_LEN:
    *out = sl_int(s->type == SL_V_STR ? (int64_t)s->u.s.n
                                      : cJSON_GetArraySize(s->u.json));
    return 0;
  case F_CONTAINS:
    *out = sl_bool(t->u.s.n == 0 ||
                   memmem(s->u.s.p, s->u.s.n, t->u.s.p, t->u.s.n) != NULL);
    return 0;
  case F_STARTS_WITH:
    *out =
        sl_bool(t->u.s.n <= s->u.s.n && mem_eq(s->u.s.p, t->u.s.p, t->u.s.n));
    return 0;
  case F_ENDS_WITH:
    *out = sl_bool(t->u.s.n <= s->u.s.n &&
                   mem_eq(s->u.s.p + s->u.s.n - t->u.s.n, t->u.s.p, t->u.s.n));
    return 0;
  case F_SUBSTR:
    return fn_substr(v, n->nkids, out);
  case F_TO_INT:
  case F_TO_FLOAT:
    return fn_to_num(n->op, s, out, err);
  case F_TO_STRING:
    return fn_to_string(s, c, out, err);
  }
  return type_err(err, "internal error: unknown function");
}

/* Recursion depth is bounded by MAX_DEPTH (checked at parse time). */
static int ev(const struct node *n, const struct sl_eval_ctx *c,
              struct sl_value *out, struct sl_error *err) {
  switch (n->kind) {
  case NK_LIT:
    *out = n->lit;
    return 0;
  case NK_FIELD:
    *out = get_field(c->row, n->segs, n->nsegs);
    return 0;
  case NK_META:
    *out = get_meta(c->rec, n->op);
    return 0;
  case NK_HEADER:
    *out = get_header(c, n->segs[0]);
    return 0;
  case NK_NOT:
  case NK_NEG:
    return ev_unary(n, c, out, err);
  case NK_BIN:
    return ev_bin(n, c, out, err);
  case NK_AND:
  case NK_OR:
    return ev_logic(n, c, out, err);
  case NK_IN:
    return ev_in(n, c, out, err);
  case NK_CALL:
    return ev_call(n, c, out, err);
  }
  return type_err(err, "internal error: bad expression node");
}

/* ------------------------------------------------------------- public API */

void sl_expr_free(struct sl_expr *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->nallocs; i++)
    free(e->allocs[i]);
  free(e->allocs);
  free(e);
}

struct sl_expr *sl_expr_parse(const char *src, int *err_col,
                              struct sl_error *err) {
  struct parser p = {.src = src ? src : "", .err = err};
  struct sl_expr *e = sl_calloc(1, sizeof(*e));
  p.e = e;
  if (err_col)
    *err_col = 0;
  if (strlen(p.src) > MAX_SRC) {
    fail(&p, 1, "expression longer than %u bytes", MAX_SRC);
    goto fail;
  }
  if (lex(&p) != 0)
    goto fail;
  e->root = parse_expr(&p, 0);
  if (!e->root)
    goto fail;
  const struct token *t = peek(&p);
  if (t->t != T_EOF) {
    static const char *const hints[][2] = {{"and", "&&"}, {"or", "||"},
                                           {"not", "!"},  {"AND", "&&"},
                                           {"OR", "||"},  {"NOT", "!"}};
    char buf[64];
    const char *hint = NULL;
    for (size_t k = 0; k < SL_ARRAY_LEN(hints); k++)
      if (strlen(hints[k][0]) == t->n && !memcmp(hints[k][0], t->p, t->n))
        hint = hints[k][1];
    if (hint)
      fail(&p, t->col, "unexpected %s; did you mean '%s'?",
           tok_text(t, buf, sizeof(buf)), hint);
    else if (t->t == T_RPAREN)
      fail(&p, t->col, "unexpected ')' without a matching '('");
    else
      fail(&p, t->col, "unexpected %s after a complete expression",
           tok_text(t, buf, sizeof(buf)));
    goto fail;
  }
  free(p.toks);
  sl_arena_free(&p.fold);
  return e;
fail:
  if (err_col)
    *err_col = p.err_col;
  free(p.toks);
  sl_arena_free(&p.fold);
  sl_expr_free(e);
  return NULL;
}

int sl_expr_static_type(const struct sl_expr *e) {
  return e && e->root ? e->root->stype : -1;
}

const char *const *sl_expr_field_path(const struct sl_expr *e, size_t *n) {
  if (!e || !e->root || e->root->kind != NK_FIELD) {
    if (n)
      *n = 0;
    return NULL;
  }
  if (n)
    *n = e->root->nsegs;
  return (const char *const *)e->root->segs;
}

int sl_expr_eval(const struct sl_expr *e, const struct sl_eval_ctx *ctx,
                 struct sl_value *out, struct sl_error *err) {
  int rc = ev(e->root, ctx, out, err);
  if (rc)
    *out = SL_NULL;
  return rc;
}
