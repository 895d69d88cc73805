/* dl_evtypes — the event types of CONTRACT §4 as a fixed list, for per-type counters with
 * bounded labels (dylive_events_written_total{type}); anything else counts as "other". */
#ifndef DL_EVTYPES_H
#define DL_EVTYPES_H

#include <stddef.h>

#define DL_EVTYPE_MAP(X)                                                                            \
  X(chat) X(emoji_chat) X(gift) X(like) X(member) X(follow) X(share) X(social) X(viewers) X(room_stats) \
  X(rank) X(fansclub) X(control) X(screen_chat) X(product) X(shopping) X(purchase) X(raw) X(other)

typedef enum {
#define DL_EVT_ENUM(n) DL_EVT_##n,
  DL_EVTYPE_MAP(DL_EVT_ENUM)
#undef DL_EVT_ENUM
  DL_EVT__COUNT
} dl_evtype;

/* The type named by type[0..len) (not NUL-terminated); DL_EVT_other for any other name. */
dl_evtype dl_evtype_of(const char *type, size_t len);
const char *dl_evtype_name(dl_evtype t);

#endif
