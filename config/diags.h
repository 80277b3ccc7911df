/*
 * diags.h - every error of one job file, not only the first.
 *
 * `sluice validate` reports all the mistakes of a file at once, each as
 * file:line:col, in file order. The binders report errors through
 * sl_cfg_error and stop at the first, which is what a caller that only
 * needs to know "valid or not" wants. While a collection is open on the
 * thread (sl_cfg_diags_begin), sl_cfg_error also records each error here,
 * and the binders (sl_cfg_bind, the job's sections, the pipeline's
 * operators) go on to the next key, section or operator instead of
 * stopping. They still return the first error, so their callers do not
 * change.
 *
 * An error of a step that in the end succeeds (a value tried one way, then
 * read another) is not an error of the file: sl_cfg_diags_mark and
 * sl_cfg_diags_keep let a step keep its records only when it fails, and
 * note an error that was not made through sl_cfg_error.
 *
 * One collection per thread; the loaders run on the coordinator thread at
 * start-up (config.h).
 */
#ifndef SL_CFG_DIAGS_H
#define SL_CFG_DIAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../src/error.h"

/* Most errors a report lists; the rest are counted ("... and N more"). */
#define SL_CFG_DIAGS_MAX 50

struct sl_cfg_diags;

/* Opens a collection on this thread (one at a time). */
struct sl_cfg_diags *sl_cfg_diags_begin(void);
/* Closes and frees it. NULL is allowed. */
void sl_cfg_diags_end(struct sl_cfg_diags *d);

/* Whether a collection is open: the binders go on after an error. */
bool sl_cfg_collecting(void);

/* Records one error at file:line:col (file NULL: no position); msg is the
 * whole text, "file:line:col: message". A text already recorded is not
 * recorded twice. No-op without an open collection. */
void sl_cfg_diags_add(const char *file, int line, int col, const char *msg);

/* The number of records so far (0 without a collection). */
size_t sl_cfg_diags_mark(void);
/* After a step that began at mark: when it failed (rc != 0) and recorded
 * nothing, err's message is recorded; when it succeeded, whatever it
 * recorded is dropped. Returns rc. */
int sl_cfg_diags_keep(size_t mark, int rc, const struct sl_error *err);

size_t sl_cfg_diags_count(const struct sl_cfg_diags *d);

/* Prints the errors in file order (line, then column; those without a
 * position last, in the order they came), at most max, then
 * "... and N more errors" when there were more. */
void sl_cfg_diags_print(const struct sl_cfg_diags *d, FILE *out, size_t max);

#endif
