/* fault.c - the hook behind the tests' fault points (see fault.h). */
#include "fault.h"

_Atomic(mp__fault_fn) mp__fault_hook;

void mp__fault_set(mp__fault_fn fn) { atomic_store(&mp__fault_hook, fn); }
