/* multiproc/common.h - what every multiproc header shares: the export
 * marker, the version, and the timeout convention.
 *
 * Timeouts are double seconds, as in Python: MP_FOREVER (any negative value)
 * blocks until the event, 0 tries once and never blocks, a positive value is
 * turned on entry into one absolute CLOCK_MONOTONIC deadline that every retry
 * measures against. */
#ifndef MULTIPROC_COMMON_H
#define MULTIPROC_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#if defined(MP_BUILDING) && defined(__GNUC__)
#define MP_EXTERN __attribute__((visibility("default")))
#else
#define MP_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION_STRING "0.1.0"

/* MP_FOREVER as a timeout blocks until the awaited event happens. */
#define MP_FOREVER (-1.0)

/* mp_version returns the library's version as "MAJOR.MINOR.PATCH". */
MP_EXTERN const char *mp_version(void);

#ifdef __cplusplus
}
#endif
#endif
