/*
 * template.h - Redis command templates: one command per output record,
 * written as the command line a user would type into redis-cli, with
 * {field} placeholders filled from the record.
 *
 *   HINCRBY revenue:{window_start} {user} {revenue}
 *   SADD ids "user {user}" {id}
 *
 * Arguments are separated by spaces; an argument in double quotes may
 * hold spaces (\" and \\ escape). In an argument, {name} is the record's
 * top-level field name, {a.b} a nested field, {@key} the record's key,
 * {@value} its whole value, and {@topic}, {@partition}, {@offset},
 * {@timestamp} as in the Kafka sink's templates ({_key} and {_value} are
 * the older spellings); {{ and }} are literal braces. The command name
 * is a literal from a fixed list (see sl_rcmd_names), and its arity and
 * numeric arguments are checked when the job is validated (literals) and
 * for every record (placeholders), so that a record that cannot make a
 * valid command becomes a dead letter instead of failing inside the
 * batch's transaction.
 *
 * Rendering turns a field into text: a string as is, an integral number
 * below 2^53 as an integer, another number as the shortest text that
 * reads back as the same double (15 to 17 digits),
 * true/false, an object or array as compact JSON. A missing or null field
 * rejects the record (with the reason).
 */
#ifndef SL_REDIS_TEMPLATE_H
#define SL_REDIS_TEMPLATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "../../src/buf.h"
#include "../../src/error.h"
#include "../../src/record.h"

struct sl_rcmd;

/* Parses one template into *out: the arguments are split here, each one
 * compiled by the shared template compiler (src/template.h) with the
 * command-line options (SL_TPL_ARG and the older {_key}/{_value}
 * spellings), then the command name, arity and literal numbers are
 * checked. On error returns SL_ERR_CONFIG with the message in err and the
 * 1-based column in text where it was found in *col. */
int sl_rcmd_parse(const char *text, struct sl_rcmd **out, int *col,
                  struct sl_error *err);
void sl_rcmd_free(struct sl_rcmd *c);

/* Whether rendering needs the value parsed as JSON (a {field}). */
bool sl_rcmd_needs_json(const struct sl_rcmd *c);
/* Whether argument 1 is a key that `ttl` applies to (not PUBLISH). */
bool sl_rcmd_has_key(const struct sl_rcmd *c);
/* The field names the template reads ({a.b} gives "a.b"). NULL-terminated;
 * owned by c. */
const char *const *sl_rcmd_fields(const struct sl_rcmd *c);
/* Checks the placeholders against a pipeline's known output fields
 * (sl_tpl_check_fields): fails (SL_ERR_CONFIG) at the first whose first
 * path segment is not one of them, with its 1-based column in *col. */
int sl_rcmd_check_fields(const struct sl_rcmd *c, const char *const *fields,
                         int *col, struct sl_error *err);

/* output: merge: checks that each aggregate field of aggs (NULL-
 * terminated) appears only where what it holds merges with what Redis
 * holds: kinds[k] '+' (count, sum) as the whole increment argument of
 * HINCRBY, HINCRBYFLOAT, INCRBY, INCRBYFLOAT or ZINCRBY; '<' (min) as a
 * whole score of ZADD LT; '>' (max) of ZADD GT; any of them anywhere in
 * PUBLISH. Fails (SL_ERR_CONFIG) at the first that does not, with its
 * 1-based column in *col. */
int sl_rcmd_check_merge(const struct sl_rcmd *c, const char *const *aggs,
                        const char *kinds, int *col, struct sl_error *err);

/* The arguments of one rendered command: argv[i] is argvlen[i] bytes
 * (not NUL-terminated) in buf. Reused across records. */
struct sl_rargs {
  const char **argv;
  size_t *argvlen;
  size_t argc, cap;
  struct sl_buf buf;
  size_t *off; /* argument offsets into buf while rendering */
};
void sl_rargs_free(struct sl_rargs *a);

/* Renders c for record r; row is r's value parsed (NULL when the value is
 * not a JSON object or was not parsed). Returns 0, or SL_ERR_INVAL with
 * the reason the record cannot make the command in err. */
int sl_rcmd_render(const struct sl_rcmd *c, const struct sl_record *r,
                   const cJSON *row, struct sl_rargs *out,
                   struct sl_error *err);

/* The supported commands, NULL-terminated (for messages). */
extern const char *const sl_rcmd_names[];

#endif
