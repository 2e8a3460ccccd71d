/* error.c - mp_strerror and mp_err_name, generated from MP_ERRNO_MAP, and
 * the per-thread detail a failing call leaves beside its code. (MP_CHECK's
 * exit lives in process.c: it ends a process.) */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* The detail of this thread's last failure that left one, and its code. */
static _Thread_local char detail_text[256];
static _Thread_local int detail_code;
static _Thread_local char message_text[400];

const char *mp_strerror(int rc) {
  switch (rc) {
  case 0:
    return "success";
#define MP__ERR_TEXT(name, value, text)                                        \
  case MP_##name:                                                              \
    return text;
    MP_ERRNO_MAP(MP__ERR_TEXT)
#undef MP__ERR_TEXT
  default:
    return "unknown error code";
  }
}

const char *mp_err_name(int rc) {
  switch (rc) {
  case 0:
    return "MP_OK";
#define MP__ERR_NAME(name, value, text)                                        \
  case MP_##name:                                                              \
    return "MP_" #name;
    MP_ERRNO_MAP(MP__ERR_NAME)
#undef MP__ERR_NAME
  default:
    return "MP_EUNKNOWN";
  }
}

const char *mp_version(void) { return MP_VERSION_STRING; }

int mp__fail(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail_text, sizeof detail_text, fmt, ap);
  va_end(ap);
  detail_code = rc;
  return rc;
}

void mp__detail_clear(void) {
  detail_text[0] = '\0';
  detail_code = 0;
}

const char *mp_error_detail(void) { return detail_text; }

int mp_error_code(void) { return detail_code; }

const char *mp_error_message(int rc) {
  if (rc != 0 && rc == detail_code && detail_text[0] != '\0')
    snprintf(message_text, sizeof message_text, "%s: %s: %s", mp_err_name(rc),
             mp_strerror(rc), detail_text);
  else
    snprintf(message_text, sizeof message_text, "%s: %s", mp_err_name(rc),
             mp_strerror(rc));
  return message_text;
}
