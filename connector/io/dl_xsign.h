/* dl_xsign — an external signer over HTTP (--signer http://…), on its own thread so the
 * WebSocket thread never blocks on it.
 *
 * Request:  GET <signer>?stub=<X-MS-STUB>&room_id=<room_id>&user_unique_id=<uid>
 *           (appended with & when the URL already has a query).
 * Response: 200 with the signature as the whole body (whitespace trimmed), or a JSON object with
 *           a "signature" string (at the top level or under "data"). 1–128 characters from the
 *           URL-safe set plus '+', '/', '='; anything else is an error.
 * Results come back through the done callback, on the signer thread. */
#ifndef DL_XSIGN_H
#define DL_XSIGN_H

#include <stddef.h>
#include <stdint.h>

typedef struct dl_xsign dl_xsign;

/* ok: 1 with sig filled, 0 with why filled. */
typedef void (*dl_xsign_done)(void *ud, const char *live_id, uint64_t gen, int ok, const char *sig,
                              const char *why);

dl_xsign *dl_xsign_new(const char *signer_url, dl_xsign_done done, void *ud);
void dl_xsign_submit(dl_xsign *x, const char *live_id, uint64_t gen, const char *stub, const char *room_id,
                     const char *uid);
void dl_xsign_free(dl_xsign *x);

/* Pure: extracts the signature from a response body. Returns 0 and fills out, or -1. */
int dl_xsign_parse(const char *body, size_t len, char *out, size_t cap);

#endif
