/* linux_cpu.c - the Linux implementation of what os/cpu.h declares beyond
 * its inline hints: giving the CPU to another runnable thread, and
 * spreading workers over the CPUs with the affinity mask. */
#define _GNU_SOURCE
#include <sched.h>

#include "cpu.h"

void mp__os_yield(void) { sched_yield(); }

void mp__os_spread(unsigned index) {
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof all, &all) != 0)
    return;
  int n = CPU_COUNT(&all);
  if (n < 2)
    return;
  int want = (int)(index % (unsigned)n);
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &all) || want-- > 0)
      continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    /* Setting a mask without the current CPU migrates the thread now;
     * the full mask back leaves it there until the scheduler moves it. */
    if (sched_setaffinity(0, sizeof one, &one) == 0)
      sched_setaffinity(0, sizeof all, &all);
    return;
  }
}
