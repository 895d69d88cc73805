/* dylive-connector — one worker: Redis assignments in, Douyin rooms out as Redis Streams. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

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
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rc = dl_worker_run(&cfg);
  curl_global_cleanup();
  dl_config_free(&cfg);
  return rc;
}
