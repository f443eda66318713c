/*
 * io.h — the read-backend interface behind the loader: io_uring (io_uring.c)
 * or a pool of pread threads (io_pread.c).  A backend takes batches of read
 * requests and hands them back completed, in any order.
 */
#ifndef IBSTORE_IO_H
#define IBSTORE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ibstore.h"

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

/* A growable FIFO of requests (queued reads, reads ready to decode). */
typedef struct ib_fifo {
	ib_req **v;
	size_t cap, head, n;
} ib_fifo;

/* Makes room for `need` entries in all; 0 or IBSTORE_ENOMEM. */
static inline int ib_fifo_reserve(ib_fifo *q, size_t need)
{
	if (need <= q->cap)
		return 0;
	size_t cap = q->cap ? q->cap : 256;
	while (cap < need)
		cap *= 2;
	ib_req **v = malloc(cap * sizeof *v);
	if (!v)
		return IBSTORE_ENOMEM;
	for (size_t i = 0; i < q->n; i++)
		v[i] = q->v[(q->head + i) % q->cap];
	free(q->v);
	q->v = v;
	q->cap = cap;
	q->head = 0;
	return 0;
}

static inline int ib_fifo_push(ib_fifo *q, ib_req *r)
{
	int rc = ib_fifo_reserve(q, q->n + 1);
	if (!rc)
		q->v[(q->head + q->n++) % q->cap] = r;
	return rc;
}

/* The oldest entry, or NULL when empty. */
static inline ib_req *ib_fifo_pop(ib_fifo *q)
{
	if (!q->n)
		return NULL;
	ib_req *r = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->n--;
	return r;
}

/* Forgets every entry; the requests are not the FIFO's to free. */
static inline void ib_fifo_clear(ib_fifo *q)
{
	q->head = 0;
	q->n = 0;
}

/* Frees the FIFO's own memory; it is empty and usable again. */
static inline void ib_fifo_free(ib_fifo *q)
{
	free(q->v);
	*q = (ib_fifo){NULL, 0, 0, 0};
}

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
