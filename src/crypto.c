/* crypto.c - the one place that starts OpenSSL's libcrypto for the
 * library. libcrypto registers an atexit cleanup by default; that cleanup
 * frees per-thread state that a thread still ending at the same moment
 * (a pool's handler, a manager's connection thread) frees again, a double
 * free at exit. OPENSSL_INIT_NO_ATEXIT leaves that state to the process's
 * end instead. Every libcrypto call in the library comes after
 * mp__crypto_init. */
#include <openssl/crypto.h>
#include <pthread.h>

#include "internal.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void crypto_start(void) {
  (void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

void mp__crypto_init(void) { pthread_once(&once, crypto_start); }
