/* numfmt.cc - see numfmt.h. C++ only because double-conversion is. */
#include "numfmt.h"

#include <cstring>
#include <double-conversion/double-to-string.h>

using double_conversion::DoubleToStringConverter;
using double_conversion::StringBuilder;

namespace {

/* %g's layout: decimal for exponents in [-4, 17), the exponent signed and
 * at least two digits wide. */
const DoubleToStringConverter
    shortest(DoubleToStringConverter::EMIT_POSITIVE_EXPONENT_SIGN, "inf", "nan",
             'e', -4, 17, 0, 0, 2);

} // namespace

int sl_fmt_double(double d, char *buf, size_t cap) {
  StringBuilder sb(buf, static_cast<int>(cap));
  shortest.ToShortest(d, &sb);
  int n = sb.position();
  sb.Finalize();
  return n;
}

int sl_fmt_i64(int64_t v, char *buf, size_t cap) {
  (void)cap;
  char t[20];
  /* the magnitude as unsigned: -INT64_MIN does not fit an int64 */
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  int k = 0;
  do {
    t[k++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u);
  int n = 0;
  if (v < 0)
    buf[n++] = '-';
  while (k)
    buf[n++] = t[--k];
  buf[n] = '\0';
  return n;
}
