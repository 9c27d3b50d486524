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

// SHA-256 and HMAC-SHA-256 without a provider lookup per call: OpenSSL 3's one-shot SHA256() and
// HMAC() fetch their algorithm every time, which costs more than hashing a short message.
#include <openssl/core_names.h>
#include <openssl/params.h>

/// The SHA-256 implementation, fetched once (a benign race: both fetches give the same algorithm).
static inline const EVP_MD *doorman_sha256_md(void) {
    static EVP_MD *md = NULL;
    EVP_MD *seen = __atomic_load_n(&md, __ATOMIC_ACQUIRE);
    if (seen) return seen;
    EVP_MD *fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD *expected = NULL;
    if (!__atomic_compare_exchange_n(&md, &expected, fetched, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        EVP_MD_free(fetched);
        return expected;
    }
    return fetched;
}

/// SHA-256 of `len` bytes into `out` (32 bytes). Returns 1 on success.
static inline int doorman_sha256(const void *data, size_t len, unsigned char *out) {
    return EVP_Digest(data, len, out, NULL, doorman_sha256_md(), NULL);
}

/// A keyed HMAC-SHA-256 context to copy per message (the key schedule is done once).
static inline EVP_MAC_CTX *doorman_hmac_sha256_new(const void *key, size_t len) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (!ctx) return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end() };
    if (EVP_MAC_init(ctx, key, len, params) != 1) { EVP_MAC_CTX_free(ctx); return NULL; }
    return ctx;
}

/// HMAC-SHA-256 of `len` bytes under `keyed` (left unchanged) into `out` (32 bytes). Returns 1 on success.
static inline int doorman_hmac_sha256(const EVP_MAC_CTX *keyed, const void *data, size_t len, unsigned char *out) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
    if (!ctx) return 0;
    size_t outlen = 0;
    int ok = EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &outlen, 32) == 1 && outlen == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}
