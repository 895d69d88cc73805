/* dylive-connector — one worker: Redis assignments in, Douyin rooms out as Redis Streams.
 * Process set-up lives here (options, logging, signals, random seed, library init); the worker
 * itself is dl_worker_run. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_config.h"
#include "dl_log.h"
#include "dl_worker.h"

int main(int argc, char **argv) {
  dl_config cfg;
  int rc = dl_config_load(&cfg, argc, argv);
  if (rc == 1) {
    dl_config_free(&cfg);
    return 0;
  }
  if (rc) {
    dl_config_free(&cfg);
    return 2;
  }
  if (cfg.check_only) {
    printf("configuration ok\n");
    dl_config_free(&cfg);
    return 0;
  }
  dl_log_level lvl = DL_LOG_INFO;
  dl_log_parse_level(cfg.log_level, &lvl);
  dl_log_setup(lvl, strcmp(cfg.log_format, "json") == 0, cfg.worker_id);
  /* a peer that closes mid-write must cost an error return, not the process */
  signal(SIGPIPE, SIG_IGN);
  /* jitter and the random user_unique_id: different in every process of a pool */
  srandom((unsigned)(dl_now_ms() ^ (int64_t)getpid() << 16));
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rc = dl_worker_run(&cfg);
  curl_global_cleanup();
  dl_config_free(&cfg);
  return rc;
}
