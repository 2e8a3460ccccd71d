/* manager/client_internal.h - what the manager's client files share: the
 * handle (address, key, one method connection per process and thread) and
 * the request helpers proxy.c builds on. */
#ifndef MP_MANAGER_CLIENT_INTERNAL_H
#define MP_MANAGER_CLIENT_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include "manager/manager_internal.h"

typedef struct mp__mgr_tconn {
  struct mp__mgr_tconn *next;
  pid_t pid;
  pthread_t tid;
  mp_connection *c;
  mp__mgr_local *local; /* calls go through it when not NULL */
} mp__mgr_tconn;

struct mp_manager {
  char address[MP_ADDRESS_MAX];
  uint8_t key[256];
  size_t keylen;
  double timeout;
  double call_timeout; /* 0: a plain call waits for its reply without end */
  int local;           /* 0: try the local channel; -1: not */
  size_t max_reply;
  pid_t owner_pid;  /* the process that made the handle */
  pid_t server_pid; /* the server child, for a started manager */
  int shut;
  pthread_mutex_t mu; /* guards conns */
  mp__mgr_tconn *conns;
};

struct mp_proxy {
  mp_manager *m;
  char typeid[64];
  char ident[MP__MGR_MAX_IDENT];
  mp_obj *exposed; /* as the server sent it at create, or NULL */
  pid_t ref_pid;   /* the process that holds this proxy's reference */
};

/* mp__mgr_control sends one control request (ident None) on a fresh
 * connection; args (a tuple or NULL) is taken. */
int mp__mgr_control(mp_manager *m, const char *fn, mp_obj *args,
                    mp_obj **result);
int mp__mgr_control_kw(mp_manager *m, const char *fn, mp_obj *args,
                       mp_obj *kwds, mp_obj **result);
/* mp__mgr_client_call calls method on ident over this thread's connection;
 * args and kwds are taken. It waits up to wait seconds for the reply
 * (negative: without end); on MP_ETIMEDOUT the connection is closed. */
int mp__mgr_client_call(mp_manager *m, const char *ident, const char *method,
                        mp_obj *args, mp_obj *kwds, double wait,
                        mp_obj **result);
/* The grace a blocking call with a finite timeout gives the server beyond
 * it, when the handle has no call_timeout. */
#define MP__MGR_GRACE 5.0
mp_obj *mp__mgr_address_obj(const mp_manager *m);
const char *mp__mgr_proxytype(const char *typeid);
mp_obj *mp__mgr_rebuild_obj(const mp_manager *m, const char *typeid,
                            const char *ident, const mp_obj *exposed);

#endif
