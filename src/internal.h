/*
 * internal.h — declarations shared by the library's files; nothing here is
 * public API.
 */
#ifndef IBSTORE_INTERNAL_H
#define IBSTORE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ibstore.h"

#define IB_API __attribute__((visibility("default")))

#define IB_ERRMSG_LEN 512

#include "abi.h"
#include "errfmt.h"

/* Formats a message into buf, a handle's IB_ERRMSG_LEN-byte message buffer,
 * and returns `code` (errfmt.h). */
#define ib_fail(buf, code, ...) ib_failn((buf), IB_ERRMSG_LEN, (code), __VA_ARGS__)

/* ---- codec.c: checksums and lz4 ---------------------------------------- */

uint64_t ib_hash(const void *data, size_t len, uint64_t seed);

/* Compresses src into dst (capacity dst_cap); returns the stored codec and
 * size.  When compression does not pay (lz4/lz4hc: output not smaller;
 * auto: it saves less than len/16) the caller is told to store raw:
 * codec NONE, *stored_out = len, dst unused. */
int ib_compress(ibstore_compress how, int level, const void *src, size_t len, void *dst,
		size_t dst_cap, uint32_t *codec_out, size_t *stored_out);
size_t ib_compress_bound(size_t len);

/* Decodes `stored` bytes of `codec` into dst that must take exactly `raw`
 * bytes.  IBSTORE_ECORRUPT when the stream is malformed or of another size.
 * `stream`: dst will not be read soon (a loader batch), so large raw
 * payloads are copied with non-temporal stores. */
int ib_decompress(uint32_t codec, const void *src, size_t stored, void *dst, size_t raw,
		  int stream);

/* ---- fsutil.c ------------------------------------------------------- */

/* Writes all of buf at offset (pwrite loop).  0 or -errno. */
int ib_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Reads exactly len bytes at offset; 0, -errno, or 1 when the file ends first. */
int ib_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* fsync of a directory by path; 0 or -errno. */
int ib_fsync_dir(const char *path);
/* Removes a directory tree of plain files (one level of sub-directories). */
void ib_remove_tree(const char *path);
/* Reads a whole (small) file into a new buffer; 0 or -errno. */
int ib_read_file(const char *path, uint8_t **out, size_t *len, size_t max);

/* Size and xxh3-64 (seed 0) of a whole file, streamed; 0 or -errno. */
int ib_hash_file(const char *path, uint64_t *size, uint64_t *hash);

/* prune.c: a native counter-based Fisher–Yates shuffle of n u64 values,
 * depending only on (seed, epoch, stream). */
void ib_shuffle_u64(uint64_t seed, uint32_t epoch, uint32_t stream, uint64_t *a, uint64_t n);

/* The splitmix64 finaliser (a bijection of 64-bit words): prune.c's and
 * image.c's counter-based streams. */
static inline uint64_t ib_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* FNV-1a over len bytes, continuing from h (start: 0xcbf29ce484222325). */
static inline uint64_t ib_fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#endif
