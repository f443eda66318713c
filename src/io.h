/*
 * io.h — the read-backend interface behind the loader: io_uring (io_uring.c)
 * or a pool of pread threads (io_pread.c).  A backend takes batches of read
 * requests and hands them back completed, in any order.
 */
#ifndef IBSTORE_IO_H
#define IBSTORE_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct ib_req {
	uint32_t shard;
	uint32_t len;      /* bytes requested */
	uint64_t off;
	uint8_t *buf;
	uint32_t need;     /* bytes that must arrive (the rest is alignment) */
	uint32_t done;     /* bytes arrived so far */
	int32_t err;       /* 0 or -errno, set on completion */
	uint32_t window;   /* owner bookkeeping */
	uint32_t first_rec, nrecs;
	int buf_index;     /* registered-buffer index, or -1 */
	uint32_t slot;     /* owner bookkeeping: the read slot it lands in */
	uint32_t fd;       /* index into the backend's descriptors */
} ib_req;

typedef struct ib_io ib_io;

struct ib_io {
	const char *name;
	int registered;
	/* Queues n requests; 0 or a negative IBSTORE_E* code. */
	int (*submit)(ib_io *io, ib_req **reqs, unsigned n);
	/* Returns completed requests (at least `min` unless failing), up to
	 * `max`, in *out; the count or a negative IBSTORE_E* code.  A request
	 * completes when `need` bytes arrived, the file ended, or it failed. */
	int (*reap)(ib_io *io, ib_req **out, unsigned max, unsigned min);
	void (*destroy)(ib_io *io);
};

/* Buffers the backend may register (io_uring fixed buffers). */
typedef struct ib_io_buffers {
	void **base;
	size_t *len;
	unsigned n;
} ib_io_buffers;

/* Creates an io_uring backend over the shard fds; IBSTORE_EUNSUPPORTED when
 * the kernel refuses io_uring (seccomp, io_uring_disabled).  msg gets why. */
int ib_io_uring_create(const int *fds, unsigned nfds, unsigned depth,
		       const ib_io_buffers *bufs, ib_io **out, char *msg);
int ib_io_pread_create(const int *fds, unsigned nfds, unsigned threads, ib_io **out,
		       char *msg);

#endif
