/* fuzz_pool.c - a task scribbles on its pool's shared segment (header,
 * function table, slot rings, input and output areas), as a buggy or
 * hostile task can, and the parent must fail that task or the pool
 * cleanly: never crash, never hang. A ThreadPool is used (its segment is
 * laid out as a process pool's; its workers are threads, so an iteration
 * costs no fork), and calls are bounded in time: together at most 4 s, well
 * inside run.sh's 10 s per input even on a loaded machine.
 *
 * The whole segment is scribbled, the header's geometry (slot count,
 * offsets, area sizes) too: defects 5 and 6 of issue 8 (the parent and the
 * workers re-read that geometry from the header) are fixed, and the inputs
 * that showed them are seeds in tests/fuzz/corpus/pool/
 * (asan-handler-news-slot-stride, asan-wake-siblings-nslots).
 *
 * Input: workers and tasks (1 byte), then the scribble records
 * (fuzz_common.h) the first task writes. */
#include "fuzz_common.h"
#include "pool_internal.h"

static unsigned char *g_seg;
static size_t g_size;
static const uint8_t *g_scr;
static size_t g_scr_len;

static int scribbling_task(const void *in, size_t in_len, void *out,
                           size_t out_cap, size_t *out_len) {
  (void)in;
  (void)in_len;
  fz_reader r = {g_scr, g_scr_len};
  /* Written in place: the parent's result thread reads concurrently. */
  fz_scribble(&r, g_seg, g_size);
  size_t n = out_cap < 8 ? out_cap : 8;
  memset(out, 7, n);
  *out_len = n;
  return 0;
}

static int echo_task(const void *in, size_t in_len, void *out, size_t out_cap,
                     size_t *out_len) {
  size_t n = in_len < out_cap ? in_len : out_cap;
  memcpy(out, in, n);
  *out_len = n;
  return 0;
}

static int square(const void *in, void *out) {
  *(int64_t *)out = *(const int64_t *)in * *(const int64_t *)in;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_reader r = {data, size};
  uint8_t sel = fz_u8(&r);
  mp_pool_opts opts = {.processes = 1 + (sel & 1)};
  mp_pool *p = NULL;
  if (mp_threadpool_new(&p, &opts) != 0)
    return 0;
  g_seg = (unsigned char *)p->h;
  g_size = p->seg_size;
  g_scr = r.p;
  g_scr_len = r.left;

  mp_async_result *a = NULL, *b = NULL;
  char msg[16] = "hello";
  if (fz_rc(mp_pool_apply_async(p, &a, scribbling_task, NULL, 0, NULL),
            "apply_async") == 0)
    fz_rc(mp_async_result_get(a, 0.5), "get");
  /* The pool goes on serving, or says it is broken. */
  if (fz_rc(mp_pool_apply_async(p, &b, echo_task, msg, sizeof msg, NULL),
            "apply_async 2") == 0) {
    if (fz_rc(mp_async_result_get(b, 0.5), "get 2") == 0) {
      size_t len = 0;
      const void *d = mp_async_result_data(b, &len);
      fz_check(d != NULL && len == sizeof msg);
    }
  }
  if (sel & 2) {
    int64_t in[40], out[40];
    for (int i = 0; i < 40; i++)
      in[i] = i;
    mp_async_result *m = NULL;
    /* map_async and a bounded get: mp_pool_map waits forever, as
     * Python's map, and a scribbled ring may never deliver. */
    if (fz_rc(mp_pool_map_async(p, &m, square, in, 40, sizeof in[0], out,
                                sizeof out[0], NULL),
              "map_async") == 0)
      fz_rc(mp_async_result_get(m, 1.0), "map get");
    mp_async_result_free(m);
  }
  mp_async_result_free(a);
  mp_async_result_free(b);
  fz_rc(mp_pool_terminate(p), "terminate");
  fz_rc(mp_pool_join(p, 2.0), "join");
  mp_pool_free(p);
  return 0;
}
