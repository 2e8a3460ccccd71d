/* error.c - mp_strerror and mp_err_name, generated from MP_ERRNO_MAP. */
#include "internal.h"

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
