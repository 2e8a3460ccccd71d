/* fuzz_queue.c - scribbles on the shared state of an in-place queue (FIFO,
 * LIFO or priority, with small and large messages queued), then uses it
 * through the public API: attach, put, get, get_msg, batches, qsize,
 * close, task_done, destroy. Every call has timeout 0. The resource
 * tracker's reading of a named queue's users (queue_users.c) is asked of
 * the same scribbled state.
 *
 * Nothing is kept out: defects 2 (the LIFO/priority heap array was
 * trusted) and 4 (close, LIFO/priority qsize/empty/full and destroy's
 * discard took a queue lock with no deadline) of issue 8 are fixed, and
 * the inputs that showed them are seeds in tests/fuzz/corpus/queue/
 * (asan-heap-index-sift-up, hang-destroy-discard-lock).
 *
 * Input: order and options (2 bytes), the messages queued before (2
 * bytes), the scribble (fuzz_common.h), then one byte per operation. */
#include "fuzz_common.h"
#include "os/os.h"
#include "queue_internal.h"
#include "queue_users.h"

#define LARGE 3000

static void fill(unsigned char *buf, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)(seed * 31 + i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned char big[LARGE + 64], out[LARGE + 64];
  fz_reader r = {data, size};
  uint8_t o = fz_u8(&r), o2 = fz_u8(&r);
  mp_queue_opts opts = {
      .order = (mp_queue_order)(o % 3),
      .joinable = (o >> 2) & 1,
      .maxsize = (o >> 3) & 7,
      .capacity = (o2 & 1) ? 8192 : 1024,
      .inline_max = 256,
      .max_message = 8192,
      .spin_ns = -1,
  };
  ssize_t need = mp_queue_size_for(&opts);
  fz_check(need > 0);
  void *mem = fz_aligned((size_t)need);
  memset(mem, 0, (size_t)need);
  mp_queue *q = NULL;
  int rc = mp_queue_init(&q, mem, (size_t)need, &opts);
  fz_check(rc == 0);
  uint64_t id = ((mp__qshared *)mem)->id;

  /* Realistic state first: some small and some large messages. */
  unsigned nsmall = fz_u8(&r) % 12, nlarge = fz_u8(&r) % 4;
  for (unsigned i = 0; i < nsmall + nlarge; i++) {
    size_t len = i < nsmall ? (size_t)(i * 13 % 200) : (size_t)(LARGE - i);
    fill(big, len, i);
    if (opts.order == MP_QUEUE_PRIORITY)
      rc = mp_queue_put_priority(q, (int64_t)(i % 3), big, len, 0);
    else
      rc = mp_queue_put_nowait(q, big, len);
    fz_rc(rc, "pre-put");
  }

  fz_scribble(&r, mem, (size_t)need);

  /* The resource tracker's question, asked of the scribbled state: as it
   * is, and as a named queue's (the only kind it is asked of). Either
   * answer is allowed; reading out of bounds is not. */
  (void)mp__queue_users_gone(mem, (size_t)need, mp__os_pidns());
  {
    mp__qshared *copy = malloc(sizeof *copy);
    fz_check(copy != NULL);
    memcpy(copy, mem, sizeof *copy);
    copy->head.magic = MP__OBJECT_MAGIC;
    copy->head.type = MP__TYPE_QUEUE;
    copy->head.origin = MP__ORIGIN_NAMED;
    (void)mp__queue_users_gone(copy, sizeof *copy, mp__os_pidns());
    (void)mp__queue_users_gone(copy, sizeof *copy - 1, 1);
    free(copy);
  }

  /* A second handle sees the scribbled header: it must refuse or cope. */
  mp_queue *q2 = NULL;
  rc = fz_rc(mp_queue_attach(&q2, mem, (size_t)need), "attach");
  fz_check(rc == 0 || q2 == NULL);

  unsigned nops = 0;
  while (r.left > 0 && nops++ < 64) {
    uint8_t op = fz_u8(&r);
    mp_queue *h = (op & 0x80) && q2 != NULL ? q2 : q;
    size_t len = 0;
    switch (op % 14) {
    case 0:
      len = fz_u8(&r);
      fill(big, len, op);
      fz_rc(mp_queue_put_nowait(h, big, len), "put");
      break;
    case 1:
      fill(big, LARGE, op);
      fz_rc(mp_queue_put_nowait(h, big, LARGE), "put large");
      break;
    case 2:
      rc = fz_rc(mp_queue_get_nowait(h, out, sizeof out, &len), "get");
      fz_check(rc != 0 || len <= sizeof out);
      break;
    case 3:
      rc = fz_rc(mp_queue_get_nowait(h, out, fz_u8(&r), &len), "get small");
      break;
    case 4: {
      mp_queue_msg m = {0};
      rc = fz_rc(mp_queue_get_msg(h, &m, 0), "get_msg");
      if (rc == 0) {
        volatile unsigned char sum = 0;
        for (size_t i = 0; i < m.len; i++)
          sum ^= ((const unsigned char *)m.data)[i];
        (void)sum;
      }
      mp_queue_msg_release(&m);
      break;
    }
    case 5: {
      int64_t prio = 0;
      fz_rc(mp_queue_get_priority(h, &prio, out, sizeof out, &len, 0),
            "get_priority");
      break;
    }
    case 6:
      fz_rc(mp_queue_put_priority(h, (int8_t)fz_u8(&r), big, fz_u8(&r), 0),
            "put_priority");
      break;
    case 7: {
      size_t lens[4] = {1, 20, 300, 7};
      ssize_t n = mp_queue_put_batch(h, big, lens, 4, 0);
      fz_rc(n < 0 ? n : 0, "put_batch");
      fz_check(n <= 4);
      break;
    }
    case 8: {
      size_t lens[4];
      ssize_t n = mp_queue_get_batch(h, out, sizeof out, lens, 4, 0);
      fz_rc(n < 0 ? n : 0, "get_batch");
      fz_check(n <= 4);
      break;
    }
    case 9: {
      ssize_t n = mp_queue_qsize(h);
      fz_rc(n < 0 ? n : 0, "qsize");
      fz_rc(mp_queue_empty(h) < 0 ? mp_queue_empty(h) : 0, "empty");
      fz_rc(mp_queue_full(h) < 0 ? mp_queue_full(h) : 0, "full");
      break;
    }
    case 10:
      fz_rc(mp_queue_task_done(h), "task_done");
      fz_rc(mp_queue_join(h, 0), "join");
      break;
    case 11:
      if (fz_u8(&r) == 0x5a)
        fz_rc(mp_queue_close(h), "close");
      break;
    case 12:
      fz_scribble(&r, mem, (size_t)need);
      break;
    case 13: {
      int64_t v;
      fz_rc(mp_queue_get_int64(h, &v, 0), "get_int64");
      fz_rc(mp_queue_poll(h) < 0 ? mp_queue_poll(h) : 0, "poll");
      break;
    }
    }
  }

  mp_queue_free(q2);
  /* free leaves an in-place queue's memory alone; destroy empties it. */
  if (mp_queue_destroy(q) != 0)
    mp_queue_free(q);
  /* The large segments and spares of this queue: its id, as made and as
   * scribbled. */
  char prefix[64];
  snprintf(prefix, sizeof prefix, "mp_q-%016llx+", (unsigned long long)id);
  fz_shm_sweep(prefix, NULL);
  snprintf(prefix, sizeof prefix, "mp_q-%016llx+",
           (unsigned long long)((mp__qshared *)mem)->id);
  fz_shm_sweep(prefix, NULL);
  free(mem);
  return 0;
}
