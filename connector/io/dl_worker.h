/* dl_worker — the control thread: Redis (claims, pipelined writes, status), the room table,
 * timers, the admin HTTP server and signals. It drives the ingest thread and the resolver. */
#ifndef DL_WORKER_H
#define DL_WORKER_H

#include "dl_config.h"

/* Runs until SIGTERM/SIGINT has drained every room. Returns the process exit status. */
int dl_worker_run(const dl_config *cfg);

#endif
