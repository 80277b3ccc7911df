/* json.cc - see json.h. C++ only because simdjson is; no exceptions. */
#include "json.h"

#include <cstdlib>
#include <cstring>
#include <simdjson.h>
#include <utility>

#include "buf.h"

namespace od = simdjson::ondemand;
using simdjson::error_code;
using simdjson::SUCCESS;

namespace {

/* A thread's parser and its padded copy of the record: simdjson reads up
 * to SIMDJSON_PADDING bytes past the end, and a Kafka payload has no such
 * slack. Both grow to the largest record seen and live as long as the
 * thread. */
struct thread_parser {
  od::parser parser;
  sl_buf buf = SL_BUF_INIT;
  size_t parser_cap = 0; /* the buf.cap the parser was allocated for */
  ~thread_parser() {
    sl_buf_free(&buf);
  }
  char *room(size_t n) {
    sl_buf_reserve(&buf, n + simdjson::SIMDJSON_PADDING);
    if (parser_cap != buf.cap) {
      /* room for the record, and the depth limit (json.h), which
       * the parser keeps when it grows itself */
      if (parser.allocate(buf.cap, SL_JSON_MAX_DEPTH + 1))
        return nullptr;
      parser_cap = buf.cap;
    }
    return buf.p;
  }
};

thread_local thread_parser tp;

/* A copy of s, terminated, from cJSON's allocator: keys and string
 * values as cJSON keeps them (freed with their node). */
char *copy(std::string_view s) {
  char *c = static_cast<char *>(cJSON_malloc(s.size() + 1));
  if (c) {
    std::memcpy(c, s.data(), s.size());
    c[s.size()] = '\0';
  }
  return c;
}

/* A string node (cJSON_CreateString needs a terminated string; simdjson's
 * are views). */
cJSON *string_node(std::string_view s) {
  cJSON *n = static_cast<cJSON *>(cJSON_malloc(sizeof(cJSON)));
  char *c = copy(s);
  if (!n || !c) {
    cJSON_free(n);
    cJSON_free(c);
    return nullptr;
  }
  std::memset(n, 0, sizeof(*n));
  n->type = cJSON_String;
  n->valuestring = c;
  return n;
}

/* Appends c to the container p, as cJSON keeps its children: a list whose
 * head's prev is the tail. */
void append(cJSON *p, cJSON *c) {
  if (!p->child) {
    p->child = c;
    c->prev = c;
  } else {
    c->prev = p->child->prev;
    p->child->prev->next = c;
    p->child->prev = c;
  }
}

error_code build(od::value v, cJSON **out, size_t depth);

/* Fills the (already created and attached) container *into from v's
 * members or elements; on error, what was built stays attached, so the
 * caller frees it with the root. */
error_code fill_object(od::object o, cJSON *into, size_t depth) {
  for (auto field : o) {
    od::field f;
    std::string_view key;
    od::value v;
    cJSON *c = nullptr;
    error_code e;
    if ((e = std::move(field).get(f)) || (e = f.unescaped_key().get(key)))
      return e;
    v = f.value();
    e = build(v, &c, depth);
    if (c) {
      append(into, c);
      if (!(c->string = copy(key)))
        return simdjson::MEMALLOC;
    }
    if (e)
      return e;
  }
  return SUCCESS;
}

error_code fill_array(od::array a, cJSON *into, size_t depth) {
  for (auto element : a) {
    od::value v;
    cJSON *c = nullptr;
    error_code e;
    if ((e = std::move(element).get(v)))
      return e;
    e = build(v, &c, depth);
    if (c)
      append(into, c);
    if (e)
      return e;
  }
  return SUCCESS;
}

/* Builds one value. Whatever was created is in *out, even on error. */
error_code build(od::value v, cJSON **out, size_t depth) {
  od::json_type t;
  error_code e;
  if ((e = v.type().get(t)))
    return e;
  switch (t) {
  case od::json_type::object: {
    od::object o;
    if (depth >= SL_JSON_MAX_DEPTH)
      return simdjson::DEPTH_ERROR;
    if ((e = v.get_object().get(o)))
      return e;
    if (!(*out = cJSON_CreateObject()))
      return simdjson::MEMALLOC;
    return fill_object(o, *out, depth + 1);
  }
  case od::json_type::array: {
    od::array a;
    if (depth >= SL_JSON_MAX_DEPTH)
      return simdjson::DEPTH_ERROR;
    if ((e = v.get_array().get(a)))
      return e;
    if (!(*out = cJSON_CreateArray()))
      return simdjson::MEMALLOC;
    return fill_array(a, *out, depth + 1);
  }
  case od::json_type::string: {
    std::string_view s;
    if ((e = v.get_string().get(s)))
      return e;
    return (*out = string_node(s)) ? SUCCESS : simdjson::MEMALLOC;
  }
  case od::json_type::number: {
    double d;
    if ((e = v.get_double().get(d)))
      return e;
    return (*out = cJSON_CreateNumber(d)) ? SUCCESS : simdjson::MEMALLOC;
  }
  case od::json_type::boolean: {
    bool b;
    if ((e = v.get_bool().get(b)))
      return e;
    return (*out = cJSON_CreateBool(b)) ? SUCCESS : simdjson::MEMALLOC;
  }
  case od::json_type::null: {
    bool is;
    if ((e = v.is_null().get(is)))
      return e;
    if (!is)
      return simdjson::N_ATOM_ERROR;
    return (*out = cJSON_CreateNull()) ? SUCCESS : simdjson::MEMALLOC;
  }
  }
  return simdjson::INCORRECT_TYPE;
}

/* Where the parser stands, as a byte offset into the record. */
size_t where(od::document &doc, const char *buf, size_t n) {
  const char *at = nullptr;
  if (doc.current_location().get(at) || at < buf || at > buf + n)
    return n;
  return static_cast<size_t>(at - buf);
}

/* Checks a scalar or array document (never a row) and names its type. */
error_code check_other(od::document &doc, od::json_type t, const char **what) {
  error_code e;
  switch (t) {
  case od::json_type::array: {
    od::array a;
    cJSON *tmp = cJSON_CreateArray();
    if (!tmp)
      return simdjson::MEMALLOC;
    e = doc.get_array().get(a);
    if (!e)
      e = fill_array(a, tmp, 1);
    cJSON_Delete(tmp);
    *what = "an array";
    return e;
  }
  case od::json_type::string: {
    std::string_view s;
    *what = "a string";
    return doc.get_string().get(s);
  }
  case od::json_type::number: {
    double d;
    *what = "a number";
    return doc.get_double().get(d);
  }
  case od::json_type::boolean: {
    bool b;
    *what = "a boolean";
    return doc.get_bool().get(b);
  }
  case od::json_type::null: {
    bool is;
    *what = "null";
    if ((e = doc.is_null().get(is)))
      return e;
    return is ? SUCCESS : simdjson::N_ATOM_ERROR;
  }
  case od::json_type::object:
    break;
  }
  return simdjson::INCORRECT_TYPE;
}

/* A refused record is rare (it becomes a dead letter), so cJSON's parser
 * is asked where it goes wrong: simdjson checks the structure of the whole
 * record before it parses, and often cannot tell the byte. */
void locate(const char *s, size_t n, struct sl_json_error *err) {
  const char *end = nullptr;
  cJSON *c = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (!c) {
    if (end >= s && end <= s + n)
      err->at = static_cast<size_t>(end - s);
    return;
  }
  cJSON_Delete(c);
  /* A whole value first: what follows it is the mistake. If there is
   * nothing, cJSON accepts what simdjson does not (text that is not
   * UTF-8, a number out of range) and simdjson's reason stands. */
  size_t at = end >= s && end <= s + n ? static_cast<size_t>(end - s) : n;
  while (at < n &&
         (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r'))
    at++;
  if (at < n) {
    err->at = at;
    err->what = "content after the JSON value";
  }
}

/* Fills *err for a refused record: e's reason, where it stopped, and,
 * when cJSON can tell, the byte that is wrong. */
void refuse(error_code e, size_t at, const char *s, size_t n,
            struct sl_json_error *err) {
  err->what = simdjson::error_message(e);
  err->at = at;
  if (e == simdjson::DEPTH_ERROR) {
    err->status = SL_JSON_TOO_DEEP;
    err->what = "nested too deep";
    return;
  }
  locate(s, n, err);
}

} // namespace

extern "C" cJSON *sl_json_parse_object(const char *s, size_t n,
                                       struct sl_json_error *err) {
  err->status = SL_JSON_INVALID;
  err->at = 0;
  err->what = "";
  char *buf = tp.room(n);
  if (!buf) {
    err->what = "out of memory";
    return nullptr;
  }
  if (n)
    std::memcpy(buf, s, n);
  od::document doc;
  od::json_type t;
  error_code e = tp.parser.iterate(buf, n, tp.buf.cap).get(doc);
  if (!e)
    e = doc.type().get(t);
  if (e) {
    refuse(e, n, s, n, err);
    return nullptr;
  }
  if (t != od::json_type::object) {
    const char *what = "";
    if ((e = check_other(doc, t, &what))) {
      refuse(e, where(doc, buf, n), s, n, err);
    } else if (!doc.current_location().error()) {
      err->what = "content after the JSON value";
      err->at = where(doc, buf, n);
    } else {
      err->status = SL_JSON_NOT_OBJECT;
      err->what = what;
    }
    return nullptr;
  }
  od::object o;
  cJSON *row = cJSON_CreateObject();
  if (!row) {
    err->what = "out of memory";
    return nullptr;
  }
  if (!(e = doc.get_object().get(o)))
    e = fill_object(o, row, 1);
  if (e) {
    size_t at = where(doc, buf, n);
    cJSON_Delete(row);
    refuse(e, at, s, n, err);
    return nullptr;
  }
  /* The object must be the whole record. */
  if (!doc.current_location().error()) {
    err->what = "content after the JSON value";
    err->at = where(doc, buf, n);
    cJSON_Delete(row);
    return nullptr;
  }
  err->status = SL_JSON_OK;
  return row;
}

extern "C" bool sl_utf8_valid(const char *s, size_t n) {
  return simdjson::validate_utf8(s, n);
}
