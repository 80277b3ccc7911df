/*
 * interp.h - ${VAR} interpolation of scalar values (interp.c). The
 * loader (config.c) calls it; it uses only src/buf.h and libc, never the
 * loader.
 */
#ifndef SL_CFG_INTERP_H
#define SL_CFG_INTERP_H

#include <stddef.h>

/* Expands ${VAR}, ${VAR:-def}, ${VAR:?msg} and $$ in s into *out (malloc'd).
 * Returns 0, or -1 with a reason (never containing a variable's value) in
 * why. */
int sl_cfg_interpolate(const char *s, char **out, char *why, size_t why_len);

#endif
