/* queue_lock.pml - a model of the queue locks (src/queue_core.c, "biased
 * locks"; the inline way in and out in src/queue_internal.h) for the SPIN
 * model checker: plain holds, biases, revokers, debts, dead holders taken
 * over, a thread SIGKILLed at any step and replaced. It checks that two
 * live threads are never inside at once, and that a bias owner never takes
 * itself for a re-entry (a spurious MP_EDEADLK).
 *
 * Run it:   make model        (or: cd tests/model && ./run.sh)
 * By hand:  spin -a queue_lock.pml && cc -O2 -DSAFETY -o pan pan.c &&
 *           ./pan -m100000
 * spin -DOLD_REVOKE ... models the protocol before the debt (the revoker
 * took its count back as soon as it held the lock): pan finds the double
 * holder, a trail that spin -t -p queue_lock.pml replays.
 *
 * Memory. SPIN interleaves; the one reordering the protocol is about is
 * x86's store buffer: the owner's store of active may still sit in its
 * core when it loads revoke. So stores of active go through a one-entry
 * store buffer per thread (buf), drained into memory at any moment (the
 * Drain process), by the thread's locked instructions (compare-and-swap,
 * fetch-and-add) and its other stores (they leave in order), and by a
 * revoker's heavy barrier (membarrier: every thread's buffer). A thread
 * reads its own buffered store. Other words are stored through at once.
 *
 * What is left out: the futex sleeps (waits are loops), timeouts, the
 * streak (a bias may be given at any plain unlock that bias_due allows),
 * the penalty, close, namespaces (liveness is exact: a killed thread is
 * dead, a live one alive, which the real check errs from only towards
 * alive, which only delays), a failed heavy barrier. */

#define NT 3          /* thread ids 1..NT (NT: a replacement) */
#define BIAS 8        /* owner: 0 free, id plain, id + BIAS a bias */
#define NONE 255      /* an empty store buffer */
#ifndef MAXKILL
#define MAXKILL 1
#endif

byte owner = 0;
byte act = 0;       /* the lock's active word */
byte buf[NT + 1];     /* each thread's buffered store of active */
byte revoke = 0;
byte debt = 0;        /* 0, or the id of a live owner whose bias was taken */
bool alive[NT + 1];
bool killreq[NT + 1];
byte inside = 0;      /* live threads inside */
byte kills = 0;

#define ACT(me) (buf[me] != NONE -> buf[me] : act)
#define DRAIN(me) if :: buf[me] != NONE -> act = buf[me]; buf[me] = NONE \
                     :: else -> skip fi
#define STORE_ACTIVE(me, v) atomic { DRAIN(me); buf[me] = v }
#define BARRIER_ALL atomic { DRAIN(1); DRAIN(2); DRAIN(3) }

proctype Drain() {
  do
  :: atomic { buf[1] != NONE -> act = buf[1]; buf[1] = NONE }
  :: atomic { buf[2] != NONE -> act = buf[2]; buf[2] = NONE }
  :: atomic { buf[3] != NONE -> act = buf[3]; buf[3] = NONE }
  od
}

proctype T(byte me) {
  byte o, a, r, d;
  bool counted, in_cs, won;
  {
  do
  :: true ->
    /* ---- mp__queue_lock: the inline way in */
    o = owner;
    if
    :: o == me + BIAS ->
      a = ACT(me);
      if
      :: a == 0 ->
        STORE_ACTIVE(me, 1);
        r = revoke;
        if
        :: r == 0 -> goto cs
        :: else -> STORE_ACTIVE(me, 0)
        fi
      :: else -> skip
      fi
    :: else -> skip
    fi;
    /* ---- mp__queue_lock_slow */
    o = owner;
    if
    :: o == me + BIAS ->
      a = ACT(me);
      assert(a == 0); /* else: a spurious MP_EDEADLK */
      STORE_ACTIVE(me, 1);
      r = revoke;
      if
      :: r == 0 -> goto cs
      :: else -> skip
      fi;
      /* bias_leave */
      STORE_ACTIVE(me, 0);
      atomic {
        DRAIN(me);
        if
        :: owner == me + BIAS -> owner = me; won = true
        :: else -> won = false
        fi
      }
      if
      :: won -> goto cs
      :: else -> skip
      fi
    :: else -> skip
    fi;
#ifndef OLD_REVOKE
    /* settle_debt: the lock is not our bias. */
    atomic {
      DRAIN(me);
      if
      :: debt == me -> debt = 0; revoke--
      :: else -> skip
      fi
    }
#endif
    /* ---- lock_slow / lock_sleep */
    counted = false;
wait:
    o = owner;
    if
    :: o == 0 ->
      atomic {
        DRAIN(me);
        if
        :: owner == 0 -> owner = me; won = true
        :: else -> won = false
        fi
      }
    :: o == me -> assert(false) /* re-entry: not in this model */
    :: o == me + BIAS ->
      /* own_bias */
      a = ACT(me);
      assert(a == 0);
      atomic {
        DRAIN(me);
        if
        :: owner == me + BIAS -> owner = me; won = true
        :: else -> won = false
        fi
      }
    :: o > BIAS && o != me + BIAS ->
      /* revoke_try */
      if
      :: !counted ->
        atomic { DRAIN(me); revoke++ };
        counted = true;
        BARRIER_ALL
      :: else -> skip
      fi;
      a = ACT(me);
      won = false;
      if
      :: a == 0 ->
        atomic {
          DRAIN(me);
          if
          :: owner == o -> owner = me; won = true
          :: else -> skip
          fi
        }
      :: else -> skip
      fi;
      if
      :: won && alive[o - BIAS] ->
#ifndef OLD_REVOKE
        debt = o - BIAS;
        counted = false
#else
        skip
#endif
      :: else -> skip
      fi;
      if
      :: !won && !alive[o - BIAS] ->
        /* a dead owner inside: taken over */
        atomic {
          DRAIN(me);
          if
          :: owner == o -> owner = me; won = true
          :: else -> skip
          fi
        }
      :: else -> skip
      fi
    :: o > 0 && o < BIAS && o != me ->
      won = false;
      if
      :: !alive[o] ->
        atomic {
          DRAIN(me);
          if
          :: owner == o -> owner = me; won = true
          :: else -> skip
          fi
        }
      :: else -> skip
      fi
    fi;
    if
    :: won ->
      if
      :: counted -> atomic { DRAIN(me); revoke-- }; counted = false
      :: else -> skip
      fi
    :: else -> goto wait
    fi;
cs:
    atomic { inside++; in_cs = true };
    assert(inside == 1);
    atomic { inside--; in_cs = false };
    /* ---- mp__queue_unlock */
    o = owner;
    if
    :: o == me + BIAS ->
      STORE_ACTIVE(me, 0);
      r = revoke /* a revoker: notify (not modelled) */
    :: else ->
      /* mp__queue_unlock_slow: a plain hold, given back or kept as a bias
       * (bias_due: no revoker, no debt; a dead owner's debt written off) */
      r = revoke;
      if
      :: r == 0 ->
        if
        :: true -> STORE_ACTIVE(me, 0); atomic { DRAIN(me); owner = me + BIAS }
        :: true -> atomic { DRAIN(me); owner = 0 }
        fi
      :: else ->
#ifndef OLD_REVOKE
        d = debt;
        if
        :: d != 0 && !alive[d] ->
          atomic {
            DRAIN(me);
            if
            :: debt == d -> debt = 0; revoke--
            :: else -> skip
            fi
          }
        :: else -> skip
        fi;
#endif
        atomic { DRAIN(me); owner = 0 }
      fi
    fi
  od
  } unless {
    killreq[me] ->
    atomic {
      alive[me] = false;
      DRAIN(me);
      if
      :: in_cs -> inside--
      :: else -> skip
      fi
    }
  }
}

proctype Killer() {
  byte v;
  do
  :: kills < MAXKILL ->
    if
    :: v = 1
    :: v = 2
    fi;
    kills++;
    killreq[v] = true;
    (!alive[v]);
    alive[NT] = true;
    run T(NT)
  :: else -> break
  od
}

init {
  atomic {
    buf[1] = NONE; buf[2] = NONE; buf[3] = NONE;
    alive[1] = true; alive[2] = true;
    run Drain();
    run T(1);
    run T(2);
    run Killer()
  }
}
