/* dl_tls — the TLS client set-up the worker (dl_redis/dl_rconn) and dylivectl (dl_rsync) share:
 * one context per process, verification always on, and each session bound to the name it must
 * prove. No sockets here. */
#ifndef DL_TLS_H
#define DL_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A client context: TLS 1.2 or later, peers verified against ca (a PEM bundle; NULL or "": the
 * system store), and a client certificate when cert and key are given (both or neither; the key
 * must match). NULL with why on failure (nothing half set up is kept). */
SSL_CTX *dl_tls_client_ctx(const char *ca, const char *cert, const char *key, char *why, size_t cap);

/* Binds a session to the server it must be: the certificate must name `name` (an IP address is
 * checked as one, anything else as a DNS name, which also goes out as SNI). 0, or -1 when OpenSSL
 * refuses the name. */
int dl_tls_bind(SSL *ssl, const char *name);

#endif
