#include "dl_evtypes.h"

#include <string.h>

static const char *const names[DL_EVT__COUNT] = {
#define DL_EVT_STR(n) #n,
    DL_EVTYPE_MAP(DL_EVT_STR)
#undef DL_EVT_STR
};

static const unsigned char lens[DL_EVT__COUNT] = {
#define DL_EVT_LEN(n) sizeof #n - 1,
    DL_EVTYPE_MAP(DL_EVT_LEN)
#undef DL_EVT_LEN
};

dl_evtype dl_evtype_of(const char *type, size_t len) {
  for (int i = 0; i < DL_EVT_other; i++)
    if (lens[i] == len && !memcmp(names[i], type, len)) return (dl_evtype)i;
  return DL_EVT_other;
}

const char *dl_evtype_name(dl_evtype t) { return (unsigned)t < DL_EVT__COUNT ? names[t] : "other"; }
