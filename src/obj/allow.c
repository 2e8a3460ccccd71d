/* allow.c - mp_pickle_allow_manager, the allow-list of the names Python's
 * manager protocol pickles (docs/objects.md, /work/shared/WIRE.md §2.2):
 * multiprocessing.managers' Token, RebuildProxy and proxy classes, the
 * builtin exception classes, slice, list and complex. Admitting a name
 * never runs anything: the decoder only records it (MP_OBJ_GLOBAL,
 * MP_OBJ_INSTANCE). */
#include <string.h>

#include "obj_internal.h"

static const char *const builtin_names[] = {
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
    "BlockingIOError", "BrokenPipeError", "BufferError", "ChildProcessError",
    "ConnectionAbortedError", "ConnectionError", "ConnectionRefusedError",
    "ConnectionResetError", "EOFError", "Exception", "FileExistsError",
    "FileNotFoundError", "FloatingPointError", "ImportError", "IndexError",
    "InterruptedError", "IsADirectoryError", "KeyError", "LookupError",
    "MemoryError", "ModuleNotFoundError", "NameError", "NotADirectoryError",
    "NotImplementedError", "OSError", "OverflowError", "PermissionError",
    "ProcessLookupError", "RecursionError", "ReferenceError", "RuntimeError",
    "StopIteration", "TimeoutError", "TypeError", "UnboundLocalError",
    "UnicodeError", "ValueError", "ZeroDivisionError",
    "slice", "list", "complex"};

int mp_pickle_allow_manager(void *ctx, const char *module,
                            const char *qualname) {
  (void)ctx;
  if (module == NULL || qualname == NULL)
    return 0;
  if (strcmp(module, "multiprocessing.managers") == 0) {
    size_t n = strlen(qualname);
    return strcmp(qualname, "Token") == 0 ||
           strcmp(qualname, "RebuildProxy") == 0 ||
           (n > 5 && strcmp(qualname + n - 5, "Proxy") == 0 &&
            strchr(qualname, '.') == NULL);
  }
  if (strcmp(module, "builtins") != 0 && strcmp(module, "__builtin__") != 0)
    return 0;
  for (size_t i = 0; i < sizeof builtin_names / sizeof *builtin_names; i++)
    if (strcmp(qualname, builtin_names[i]) == 0)
      return 1;
  return 0;
}
