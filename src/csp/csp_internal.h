/* csp_internal.h - what the CSP files share and nothing outside sees: the
 * channel's shared layout, the process-local handles, and the operations
 * the front files (channel.c, select.c, network.c) build on, implemented
 * in segment.c (homes, ends, poison/retire, the sweep of dead processes),
 * offer.c (the offer protocol, the buffer, and how a party waits: spin,
 * yield, sleep; os/futexv.h sleeps on several words at once).
 *
 * DESIGN
 * A channel is one shared region:
 *
 *   csp_shared     magic, version, geometry, an owner-word lock, the status
 *                  bits (poisoned, readers/writers retired), join counts
 *                  and the buffer's head and count
 *   ends[max_ends] one record per joined end: kind, holder pid, what the
 *                  holder is doing (idle, reading, writing), generation
 *   slots[max_waiting] offers of waiting parties (below)
 *   ring[buffer]   the buffer: length + msg_max bytes per message
 *
 * Offers. A party that cannot complete at once posts an offer in a slot:
 * a write offer carries its message, a read offer its capacity. A partner
 * completes an offer with compare-and-swap on the slot's 64-bit state word
 * (sequence:24 | state:8 | partner pid:32), so whoever wins the CAS owns
 * the transfer and a loser changes nothing. States:
 *   FREE -> OFFERED (owner, under the channel lock, after checking that no
 *           opposite offer and no buffered message could serve it)
 *   OFFERED -> CLAIMED  a partner takes a single offer (a reader then
 *                       copies the message out, a writer fills the slot),
 *                       or anyone claims a choice's offer (multi)
 *   CLAIMED -> ACCEPTED the choosing owner accepts one claim (multi only);
 *                       it rejects the others by setting them FREE
 *   CLAIMED/ACCEPTED -> DONE  the partner finished its copy
 *   DONE -> FREE        the owner collected the result
 *   OFFERED -> FREE     the owner withdrew (timeout, poison, choice over)
 * The sequence grows with each posting, so a partner acting on an old
 * snapshot fails its CAS (no ABA). A message is copied while its slot is
 * owned by the copier alone, and the commit is one atomic store or CAS: a
 * message is never half delivered. (A partner reads a slot's length
 * before claiming it only as a snapshot that the claim validates.)
 *
 * Choice without a shared selection word. A choosing party's offers sit in
 * several channels that another process may not have mapped together, so
 * no word can say "this choice is taken" to all of them. Instead the owner
 * arbitrates its own claims: a claim on a multi offer waits for the owner's
 * ACCEPTED or rejection. To keep this free of cycles, a party only ever
 * claims while it has no offer posted (the "active" phase of a choice, or a
 * plain read or write), and an owner with offers posted never waits for
 * anyone but a partner it has accepted. When a choice, while posting,
 * finds an opposite offer or buffer room, it withdraws everything (taking
 * a claim that beat the withdrawal) and starts over in the active phase.
 * Posting and the check before it happen under the channel lock, so two
 * opposite parties cannot both post and wait for each other.
 *
 * Crashes. Every slot and end record holds its process id. Waiters sleep in
 * slices of MP__SYNC_SLICE_NS and, at each, sweep the channel: a dead
 * owner's slot is freed, a dead partner's claim is undone (the owner posts
 * again), and a dead process's ends are left: retired, or the channel is
 * poisoned when the end was in a write. The lock is the owner-word lock of
 * sync_lock.c (a robust pthread mutex would make glibc and the kernel
 * follow pointers another program can write); its
 * state stays consistent because every slot change is a single CAS. */
#ifndef MP_CSP_INTERNAL_H
#define MP_CSP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../internal.h"
#include "../os/process_os.h"
#include "../sync_internal.h"
#include "multiproc/csp.h"

#define CSP_MAGIC 0x4d504348u /* "MPCH" */
#define CSP_VERSION 2 /* 2: the owner-word lock replaced a pthread mutex */
#define CSP_ALIGN 64

#define CSP_DEFAULT_MSG_MAX 4096
#define CSP_DEFAULT_WAITING 32
#define CSP_DEFAULT_ENDS 64
#define CSP_MAX_MSG (16u << 20)
#define CSP_MAX_BUFFER (1u << 20)
#define CSP_MAX_WAITING 1024
#define CSP_MAX_ENDS 4096
#define CSP_MAX_GUARDS 64

/* Status bits. */
#define CSP_POISONED 1u
#define CSP_READERS_RETIRED 2u
#define CSP_WRITERS_RETIRED 4u

/* End kinds and what a holder is doing. */
#define CSP_END_FREE 0u
#define CSP_END_READER 1u
#define CSP_END_WRITER 2u
#define CSP_BUSY_IDLE 0u
#define CSP_BUSY_READ 1u
#define CSP_BUSY_WRITE 2u

/* Offer directions (what the owner wants to do). */
#define CSP_DIR_READ 1u
#define CSP_DIR_WRITE 2u

/* Slot states. */
#define ST_FREE 0u
#define ST_OFFERED 1u
#define ST_CLAIMED 2u
#define ST_ACCEPTED 3u
#define ST_DONE 4u

static inline uint64_t csp_word(uint32_t seq, uint32_t st, int32_t pid) {
  return ((uint64_t)(seq & 0xffffffu) << 40) | ((uint64_t)(st & 0xffu) << 32) |
         (uint32_t)pid;
}
static inline uint32_t csp_seq(uint64_t w) { return (uint32_t)(w >> 40); }
static inline uint32_t csp_st(uint64_t w) { return (uint32_t)(w >> 32) & 0xffu; }
static inline int32_t csp_pid(uint64_t w) { return (int32_t)(uint32_t)w; }

typedef struct csp_shared {
  uint32_t magic;
  uint16_t version;
  uint16_t origin; /* enum mp__object_origin */
  uint64_t total_size;
  uint32_t msg_max, buffer, max_waiting, max_ends;
  uint32_t slot_size, entry_size;
  uint64_t ends_off, slots_off, ring_off;
  int32_t creator_pid;
  uint32_t pad0;
  mp__sync_lock lock; /* the library's owner-word lock: no pointers */
  _Atomic uint32_t status;
  _Atomic uint32_t offers_hint; /* bumped by every posting (unused by logic) */
  /* Under the lock: */
  uint32_t nreaders, nwriters;
  uint32_t ring_head, ring_count;
  uint32_t joined_readers, joined_writers; /* ever joined */
} csp_shared;

typedef struct csp_end_rec {
  _Atomic uint32_t kind; /* CSP_END_*; FREE once left */
  _Atomic int32_t pid;   /* the holder process */
  _Atomic uint32_t busy; /* CSP_BUSY_* */
  _Atomic uint32_t gen;  /* grows each time the record is left */
} csp_end_rec;

typedef struct csp_slot {
  _Atomic uint64_t state;
  _Atomic uint32_t bell;     /* futex: bumped after every change */
  _Atomic uint32_t sleepers; /* parties asleep on bell */
  uint32_t dir;              /* CSP_DIR_* of the owner */
  uint32_t multi;            /* part of a choice: claims need acceptance */
  int32_t owner_pid;
  int32_t owner_tid;
  uint32_t cap;    /* read offer: the owner's capacity */
  uint32_t len;    /* the message's length */
  uint32_t toobig; /* read offer: the writer's message did not fit */
  uint32_t pad[5];
  /* the message follows, at offset CSP_SLOT_HDR */
} csp_slot;

#define CSP_SLOT_HDR 64
_Static_assert(sizeof(csp_slot) <= CSP_SLOT_HDR, "slot header fits");

/* The process-local handle: the geometry checked once on attach and kept
 * here, so nothing later trusts a size read again from shared memory. */
struct mp_channel {
  csp_shared *s;
  void *map; /* the mapping (NULL in place) */
  size_t map_size;
  int origin;
  pid_t creator; /* named: this process created it and unlinks it */
  uint32_t msg_max, buffer, max_waiting, max_ends, slot_size, entry_size;
  char *ends, *slots, *ring;
  char shm_name[MP_CHANNEL_NAME_MAX + 8];
  struct csp_remote *remote; /* a channel served elsewhere (remote_*.c) */
};

struct mp_channel_end {
  mp_channel *ch;
  uint32_t index;
  uint32_t gen;
  uint32_t kind;
  struct csp_remote_end *remote; /* an end of a remote channel */
};

static inline csp_end_rec *csp_end_rec_of(const mp_channel *c, uint32_t i) {
  return (csp_end_rec *)(c->ends + (size_t)i * sizeof(csp_end_rec));
}
static inline csp_slot *csp_slot_of(const mp_channel *c, uint32_t i) {
  return (csp_slot *)(c->slots + (size_t)i * c->slot_size);
}
static inline unsigned char *csp_slot_data(csp_slot *sl) {
  return (unsigned char *)sl + CSP_SLOT_HDR;
}

/* ---- segment.c ------------------------------------------------------- */

/* mp__csp_lock_until takes the channel lock by deadline d: 0 (held; also
 * after taking it over from a dead holder, and when the word was scribbled
 * over: the caller goes on without it, see segment.c), or the error of d
 * (MP_ETIMEDOUT, MP_EAGAIN for a poll) when a holder that is not known to
 * be gone keeps it past d. Every caller (a poll, one already late) gives a
 * holder inside its short critical section at least CSP_POLL_GRACE_NS; a
 * poll that claimed a choice's offer waits as long for the owner's
 * decision (offer.c). mp__csp_lock waits forever (for the calls that take
 * no timeout: join, poison, retire, stats). */
#define CSP_POLL_GRACE_NS (5 * 1000 * 1000)
int mp__csp_lock_until(mp_channel *c, mp__deadline d);
void mp__csp_lock(mp_channel *c);
void mp__csp_unlock(mp_channel *c);

/* mp__csp_end_check returns 0 when e is a live end of kind (0: either);
 * MP_ERETIRED when it has been left; MP_EINVAL otherwise. */
int mp__csp_end_check(const mp_channel_end *e, uint32_t kind);

/* mp__csp_set_busy records what the end's holder is doing. */
void mp__csp_set_busy(const mp_channel_end *e, uint32_t busy);

/* mp__csp_leave leaves the end's record under the lock: retire (poison
 * false) or poison the channel. Caller holds the lock. */
void mp__csp_leave_locked(mp_channel *c, uint32_t index, bool poison);

/* mp__csp_poke bumps the bell of every posted slot (of direction dir, 0:
 * all) so their owners look again. */
void mp__csp_poke(mp_channel *c, uint32_t dir);

/* mp__csp_sweep leaves the ends of dead processes and frees the slots of
 * dead owners. Takes the lock by deadline d (at most a slice from now);
 * when it cannot, it does nothing (a sweep is a best effort that the next
 * slice repeats). */
void mp__csp_sweep(mp_channel *c, mp__deadline d);

/* A process's id in a channel's records: its pid and, above it, the index
 * of its PID namespace in the channel lock's table (sync_lock.c). A pid
 * means something only to processes of the same namespace, so only they
 * may find its process dead (issue 8, defect 1's rule). */
#define CSP_ID_PID_BITS 22
int32_t mp__csp_self_id(mp_channel *c);

/* mp__csp_id_gone: is the process with id certainly gone? An id of another
 * or an unknown namespace is never found gone. */
bool mp__csp_id_gone(mp_channel *c, int32_t id);

/* mp__csp_adopt moves the end's record to the process with id (0: the
 * caller; the process network hands ends to its children this way);
 * returns the previous holder's id. */
int32_t mp__csp_adopt(const mp_channel_end *e, int32_t id);

/* mp__csp_status reads the status bits. */
static inline uint32_t mp__csp_status(const mp_channel *c) {
  return atomic_load_explicit(&c->s->status, memory_order_acquire);
}

/* ---- choice order (select.c, remote_select.c) ----------------------------
 * Where a choice starts looking: PriSelect at the first guard, AltSelect at
 * a random one, FairSelect after the one that fired last in this thread
 * (each file that includes this keeps its own per-thread state). */
enum { MP__CSP_PRI, MP__CSP_ALT, MP__CSP_FAIR };

__attribute__((unused)) static _Thread_local unsigned mp__csp_fair_last;
__attribute__((unused)) static _Thread_local uint64_t mp__csp_alt_rng;

static inline unsigned mp__csp_next_random(void) {
  if (mp__csp_alt_rng == 0)
    mp__csp_alt_rng = (uint64_t)mp__os_now_ns() ^
                      ((uint64_t)mp__os_gettid() << 32) ^
                      0x9e3779b97f4a7c15ull;
  mp__csp_alt_rng ^= mp__csp_alt_rng << 13;
  mp__csp_alt_rng ^= mp__csp_alt_rng >> 7;
  mp__csp_alt_rng ^= mp__csp_alt_rng << 17;
  return (unsigned)(mp__csp_alt_rng >> 11);
}

static inline unsigned mp__csp_select_start(int mode, size_t n) {
  if (mode == MP__CSP_ALT)
    return mp__csp_next_random() % (unsigned)n;
  if (mode == MP__CSP_FAIR)
    return (mp__csp_fair_last + 1) % (unsigned)n;
  return 0;
}

static inline void mp__csp_select_done(int mode, int rc) {
  if (rc >= 0 && mode == MP__CSP_FAIR)
    mp__csp_fair_last = (unsigned)rc;
}

/* ---- remote_client.c, remote_select.c: channels across hosts ---------
 * The front calls hand a remote channel or end (->remote set) to these. */
int mp__csp_remote_join(mp_channel *c, uint32_t kind, mp_channel_end **out);
void mp__csp_remote_end_free(mp_channel_end *e);
int mp__csp_remote_check(const mp_channel_end *e, uint32_t kind);
void mp__csp_remote_free(mp_channel *c);
int mp__csp_remote_poison(mp_channel_end *e);
int mp__csp_remote_retire(mp_channel_end *e);
int mp__csp_remote_stats(mp_channel *c, mp_channel_stats *st);
int mp__csp_remote_write(mp_channel_end *w, const void *msg, size_t len,
                         double timeout);
ssize_t mp__csp_remote_read(mp_channel_end *r, void *buf, size_t cap,
                            double timeout);
/* mp__csp_guards_check checks a choice's n guards (guard_check.c) and
 * finds its skip and timeout guards (-1: none) and the timeout's seconds
 * (MP_FOREVER: none). */
int mp__csp_guards_check(const mp_guard *g, size_t n, int *skip,
                         int *timeout, double *seconds);

/* mp__csp_remote_guarded says whether a choice has a remote guard; then
 * mp__csp_remote_select runs it (mode: MP__CSP_PRI, _ALT or _FAIR). */
bool mp__csp_remote_guarded(const mp_guard *guards, size_t n);
int mp__csp_remote_select(mp_guard *guards, size_t n, int mode);

/* ---- offer.c --------------------------------------------------------- */

/* One guard's worth of an operation on one channel. */
typedef struct csp_op {
  mp_channel_end *end;
  uint32_t dir; /* CSP_DIR_READ or CSP_DIR_WRITE */
  void *buf;    /* read: where to */
  size_t cap;
  const void *msg; /* write: what */
  size_t len;
  size_t received; /* read: the length taken */
  /* how long the channel lock, and an owner's decision on a claim, may be
   * waited for (the call's deadline; a poll for a skip guard) */
  mp__deadline d;
  /* posted offer, when any */
  int slot;
  uint32_t seq;
} csp_op;

/* mp__csp_attempt tries to complete op now: from/into the buffer, or by
 * taking an opposite offer. Returns 0 (done), MP_EAGAIN (nothing ready),
 * MP_EPOISONED, MP_ERETIRED, MP_ETOOBIG, MP_ECORRUPT, or op->d's error
 * (MP_ETIMEDOUT; MP_EAGAIN for a poll) when the channel lock was not
 * free by op->d. With post set and
 * nothing ready, it posts an offer under the same lock hold instead and
 * returns 1 (op->slot, op->seq set). With peek set (a choice posting),
 * it neither takes anything nor waits for anyone: when something is ready
 * it returns 2. */
#define CSP_ATTEMPT_TRY 0
#define CSP_ATTEMPT_POST 1
#define CSP_ATTEMPT_PEEK_POST 2
int mp__csp_attempt(csp_op *op, int mode, bool multi);

/* mp__csp_withdraw withdraws op's posted offer. Returns 0 (withdrawn),
 * 1 when a partner claimed it first (state CLAIMED: the caller decides),
 * 2 when it is DONE (a single offer completed: collect it). */
int mp__csp_withdraw(csp_op *op);

/* mp__csp_slot_state loads op's slot state word. */
uint64_t mp__csp_slot_state(const csp_op *op);

/* mp__csp_reject rejects the claim on op's slot (the slot becomes FREE). */
void mp__csp_reject(csp_op *op);

/* mp__csp_accept_and_finish accepts the claim on op's multi offer and waits
 * for the partner to finish. Returns 0 (done; a read's length in
 * op->received), MP_ETOOBIG, or 1 when the partner died (slot freed). */
int mp__csp_accept_and_finish(csp_op *op);

/* mp__csp_collect finishes op's single offer once DONE: copies a read out,
 * frees the slot. Returns 0 or MP_ETOOBIG. */
int mp__csp_collect(csp_op *op);

/* mp__csp_wait_single waits for op's posted single offer to finish.
 * Returns 0 (done), 1 (the offer was lost to a dead partner: start over),
 * MP_EAGAIN/MP_ETIMEDOUT, MP_EPOISONED, MP_ERETIRED, MP_ETOOBIG. */
int mp__csp_wait_single(csp_op *op, mp__deadline d);

/* mp__csp_bell and mp__csp_sleepers return op's slot bell word and the
 * count of parties asleep on it. */
_Atomic uint32_t *mp__csp_bell(const csp_op *op);
_Atomic uint32_t *mp__csp_sleepers(const csp_op *op);

/* mp__csp_op_failure says, for a posted op with an OFFERED slot, whether
 * the channel now fails it: MP_EPOISONED, MP_ERETIRED, or 0. */
int mp__csp_op_failure(const csp_op *op);

/* ---- waiting (offer.c) ----------------------------------------------- */

/* mp__csp_bells_wait waits until one of the n bells differs from its
 * expected value (true; it may also return true early) or abs_ns passes
 * (false): it spins, then yields, then sleeps counted in each bell's
 * sleepers (on several bells with futex_waitv, os/futexv.h). */
bool mp__csp_bells_wait(_Atomic uint32_t *const *bells,
                        const uint32_t *expect,
                        _Atomic uint32_t *const *sleepers, int n,
                        int64_t abs_ns);

/* mp__csp_wake rings a bell, and wakes its sleepers if it has any. */
void mp__csp_wake(_Atomic uint32_t *bell, _Atomic uint32_t *sleepers);

#endif
