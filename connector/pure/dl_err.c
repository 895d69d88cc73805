#include "dl_err.h"

static const char *const err_str[] = {
#define DL_ERR_STR(name, str) str,
    DL_ERR_MAP(DL_ERR_STR)
#undef DL_ERR_STR
};

static const char *const err_name[] = {
#define DL_ERR_NAME(name, str) #name,
    DL_ERR_MAP(DL_ERR_NAME)
#undef DL_ERR_NAME
};

const char *dl_err_str(dl_err e) {
  if ((unsigned)e >= DL_E__COUNT) return "unknown error";
  return err_str[e];
}

const char *dl_err_name(dl_err e) {
  if ((unsigned)e >= DL_E__COUNT) return "UNKNOWN";
  return err_name[e];
}
