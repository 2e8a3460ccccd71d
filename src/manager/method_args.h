/* method_args.h - the argument binding that every exposed method of the
 * manager's shared types starts with (types_container.c, types_sync.c):
 *
 *   ARGS("key", "default");   names the method's parameters
 *   BIND(1);                  binds args/kwds to them (1 required), or
 *                             returns after mp__mgr_bind left the error
 *   if (IS("get")) ...        the method being called
 *
 * Included only by those two files: the names are short on purpose. */
#ifndef MP_MANAGER_METHOD_ARGS_H
#define MP_MANAGER_METHOD_ARGS_H

#include <string.h>

#include "manager/manager_internal.h"

#define ARGS(...)                                    \
  static const char *const names_[] = {__VA_ARGS__}; \
  const mp_obj *a[MP__ARRAY_SIZE(names_)]
#define BIND(req) \
  if (mp__mgr_bind(call, names_, MP__ARRAY_SIZE(names_), (req), a)) return 0
#define IS(m) (strcmp(call->method, (m)) == 0)

#endif
