/* numfmt.h - numbers to text on the output path.
 *
 * snprintf("%.17g") is correct but slow: glibc formats a double with
 * multi-precision arithmetic, and finding the shortest text that reads
 * back needs a strtod per try. Emitting window results spent a quarter of
 * its CPU there (docs/benchmarks.md). double-conversion (Debian's
 * libdouble-conversion) finds the shortest round-tripping digits directly
 * (Grisu3, with a bignum fallback). */
#ifndef SL_NUMFMT_H
#define SL_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shortest text that reads back (strtod) as exactly d, laid out as
 * %g lays it out: plain decimals for exponents from -4 to 16, otherwise
 * d.ddde+XX; "nan", "inf", "-inf" for the others. NUL-terminated; returns
 * its length. cap >= 32. */
int sl_fmt_double(double d, char *buf, size_t cap);

/* The decimal text of v, NUL-terminated; returns its length. cap >= 21. */
int sl_fmt_i64(int64_t v, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
