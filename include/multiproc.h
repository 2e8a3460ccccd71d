/* multiproc.h - the umbrella header: Python's multiprocessing in C.
 * Include this, link with -lmultiproc (pkg-config --libs multiproc). */
#ifndef MULTIPROC_H
#define MULTIPROC_H

#include "multiproc/common.h"
#include "multiproc/error.h"
#include "multiproc/process.h"
#include "multiproc/sync.h"
#include "multiproc/thread.h"
#include "multiproc/queue.h"
#include "multiproc/pool.h"
#include "multiproc/connection.h"
#include "multiproc/listener.h"
#include "multiproc/shared.h"

#endif
