/* os/cpu.h - the processor interface of spin loops: the hint a spin loop
 * gives the CPU while it polls a word another core will change (PAUSE on
 * x86, YIELD on ARM), so the spinning core yields its pipeline to its
 * hyper-thread and leaves the loop promptly once the word changes; and
 * giving the rest of the time slice to another runnable thread, so that a
 * spinner never keeps the thread it waits for off a busy CPU. A port to
 * another architecture adds its instruction here; without one, a compiler
 * barrier keeps the loop re-reading memory. */
#ifndef MP_OS_CPU_H
#define MP_OS_CPU_H

static inline void mp__os_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield" ::: "memory");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

/* mp__os_yield gives up the CPU to another runnable thread, if any. */
void mp__os_yield(void);

/* mp__os_spread moves the calling thread to the index-th CPU it may run
 * on (modulo their number) and then allows it every CPU again. The
 * scheduler then wakes it where it last ran: workers started one after
 * the other spread over the CPUs from their first task instead of
 * sharing the one their creator runs on. A hint: failures are ignored. */
void mp__os_spread(unsigned index);

#endif
