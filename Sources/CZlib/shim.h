// SPDX-License-Identifier: Apache-2.0
#ifndef DOORMAN_CZLIB_SHIM_H
#define DOORMAN_CZLIB_SHIM_H

#include <stddef.h>
#include <stdlib.h>
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros (they pass ZLIB_VERSION and sizeof(z_stream)), which
// Swift cannot import; these wrappers also install a counting allocator, so each stream knows how
// many bytes zlib holds for it. `counter` must outlive the stream (it lives beside it).

/// Each block carries its size in a 16-byte header (keeps malloc's 16-byte alignment).
static inline voidpf doorman_zalloc(voidpf counter, uInt items, uInt size) {
    size_t bytes = (size_t)items * (size_t)size;
    size_t *block = (size_t *)malloc(bytes + 16);
    if (block == NULL) return Z_NULL;
    block[0] = bytes;
    *(size_t *)counter += bytes;
    return (voidpf)((char *)block + 16);
}

static inline void doorman_zfree(voidpf counter, voidpf address) {
    if (address == Z_NULL) return;
    size_t *block = (size_t *)((char *)address - 16);
    *(size_t *)counter -= block[0];
    free(block);
}

/// deflateInit2 with the counting allocator. `windowBits` is negative for raw DEFLATE.
static inline int doorman_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel, size_t *counter) {
    stream->zalloc = doorman_zalloc;
    stream->zfree = doorman_zfree;
    stream->opaque = (voidpf)counter;
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 with the counting allocator. `windowBits` is negative for raw DEFLATE.
static inline int doorman_inflateInit2(z_streamp stream, int windowBits, size_t *counter) {
    stream->zalloc = doorman_zalloc;
    stream->zfree = doorman_zfree;
    stream->opaque = (voidpf)counter;
    return inflateInit2(stream, windowBits);
}

#endif
