// SPDX-License-Identifier: Apache-2.0
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

// OpenSSL configures SSL_CTX and BIO through macros over *_ctrl calls, which Swift cannot import.
// These wrappers expose exactly the ones Transport's TLS code uses.

static inline int doorman_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline int doorman_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}
static inline long doorman_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long doorman_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline int doorman_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}
static inline int doorman_SSL_set_min_proto_version(SSL *ssl, int version) {
    return (int)SSL_set_min_proto_version(ssl, version);
}
static inline int doorman_SSL_set_max_proto_version(SSL *ssl, int version) {
    return (int)SSL_set_max_proto_version(ssl, version);
}
static inline int doorman_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The server options Transport sets: server-chosen cipher and group order, no renegotiation,
/// no TLS compression.
static inline uint64_t doorman_ssl_server_options(void) {
    return SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
}
/// Free idle read/write buffers; never hold a buffer across calls for a write we took whole.
static inline long doorman_ssl_server_modes(void) {
    return SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
}
static inline long doorman_ssl_sess_cache_off(void) { return SSL_SESS_CACHE_OFF; }

static inline void doorman_BIO_set_retry_read(BIO *bio) { BIO_set_retry_read(bio); }
static inline void doorman_BIO_clear_retry_flags(BIO *bio) { BIO_clear_retry_flags(bio); }
static inline long doorman_BIO_get_mem_ptr(BIO *bio, BUF_MEM **out) { return BIO_get_mem_ptr(bio, out); }
static inline long doorman_BIO_ctrl_pending(BIO *bio) { return (long)BIO_ctrl_pending(bio); }
