#include "dl_tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>

SSL_CTX *dl_tls_client_ctx(const char *ca, const char *cert, const char *key, char *why, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return snprintf(why, cap, "cannot create a TLS context"), NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int has_ca = ca && *ca, has_cert = cert && *cert, has_key = key && *key;
  if ((has_ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
    snprintf(why, cap, "--redis-ca-file: cannot load %s", has_ca ? ca : "the system store");
    goto fail;
  }
  if (has_cert != has_key) {
    snprintf(why, cap, "--redis-cert and --redis-key go together");
    goto fail;
  }
  if (has_cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
    const char *e = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(why, cap, "--redis-cert/--redis-key: cannot load the client certificate: %s", e ? e : "?");
    goto fail;
  }
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

int dl_tls_bind(SSL *ssl, const char *name) {
  SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1) return 0; /* an IP: no SNI (RFC 6066) */
  ERR_clear_error();
  return SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}
