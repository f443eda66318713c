/*
 * io_uring.c — the io_uring read backend: batched submission, registered
 * files and buffers where the kernel and RLIMIT_MEMLOCK allow them (a clean
 * fallback when refused), short reads resubmitted.
 */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"
#include "io.h"

typedef struct uring_io {
	ib_io io;
	struct io_uring ring;
	const int *fds;
	int fixed_files;
	unsigned inflight;
	unsigned depth;
	ib_req **backlog; /* queued beyond the ring's room */
	size_t nback, capback, headback;
} uring_io;

static int queue_one(uring_io *u, ib_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return 0;
	int fd = u->fixed_files ? (int)r->fd : u->fds[r->fd];
	uint8_t *buf = r->buf + r->done;
	unsigned len = r->len - r->done;
	uint64_t off = r->off + r->done;
	if (r->buf_index >= 0 && u->io.registered)
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, r->buf_index);
	else
		io_uring_prep_read(sqe, fd, buf, len, off);
	if (u->fixed_files)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, r);
	u->inflight++;
	return 1;
}

/* Moves backlog into the ring while there is room; then submits. */
static int pump(uring_io *u)
{
	while (u->headback < u->nback && u->inflight < u->depth) {
		if (!queue_one(u, u->backlog[u->headback]))
			break;
		u->headback++;
	}
	if (u->headback == u->nback)
		u->headback = u->nback = 0;
	int rc = io_uring_submit(&u->ring);
	return rc < 0 ? IBSTORE_EIO : 0;
}

/* Room in the backlog for n more requests. */
static int reserve_back(uring_io *u, size_t n)
{
	if (u->nback + n <= u->capback)
		return 0;
	size_t cap = u->capback ? u->capback : 256;
	while (cap < u->nback + n)
		cap *= 2;
	ib_req **b = realloc(u->backlog, cap * sizeof *b);
	if (!b)
		return IBSTORE_ENOMEM;
	u->backlog = b;
	u->capback = cap;
	return 0;
}

static int push_back(uring_io *u, ib_req *r)
{
	int rc = reserve_back(u, 1);
	if (!rc)
		u->backlog[u->nback++] = r;
	return rc;
}

/* All or nothing: a request the caller is told was refused is never read
 * into its buffer later. */
static int uring_submit(ib_io *io, ib_req **reqs, unsigned n)
{
	uring_io *u = (uring_io *)io;
	int rc = reserve_back(u, n);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++)
		u->backlog[u->nback++] = reqs[i];
	return pump(u);
}

static int uring_reap(ib_io *io, ib_req **out, unsigned max, unsigned min)
{
	uring_io *u = (uring_io *)io;
	unsigned got = 0;
	while (got < max) {
		struct io_uring_cqe *cqe;
		int rc;
		if (got < min && u->inflight > 0)
			rc = io_uring_wait_cqe(&u->ring, &cqe);
		else
			rc = io_uring_peek_cqe(&u->ring, &cqe);
		if (rc == -EAGAIN || (rc == 0 && !cqe))
			break;
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return IBSTORE_EIO;
		ib_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		u->inflight--;
		if (res < 0) {
			r->err = res;
		} else if (res > 0 && r->done + (unsigned)res < r->need) {
			r->done += (unsigned)res; /* short read: ask for the rest */
			if ((rc = push_back(u, r)) || (rc = pump(u)))
				return rc;
			continue;
		} else {
			r->done += (unsigned)res;
		}
		out[got++] = r;
		if (u->inflight == 0 && u->nback == 0)
			break;
	}
	if (u->nback) {
		int rc = pump(u);
		if (rc)
			return rc;
	}
	return (int)got;
}

static void uring_destroy(ib_io *io)
{
	uring_io *u = (uring_io *)io;
	io_uring_queue_exit(&u->ring);
	free(u->backlog);
	free(u);
}

int ib_io_uring_create(const int *fds, unsigned nfds, unsigned depth,
		       const ib_io_buffers *bufs, ib_io **out, char *msg)
{
	uring_io *u = calloc(1, sizeof *u);
	if (!u)
		return ib_fail(msg, IBSTORE_ENOMEM, "out of memory");
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_COOP_TASKRUN; /* rings are submitted from the I/O thread */
	int rc = io_uring_queue_init_params(depth, &u->ring, &p);
	if (rc == -EINVAL) { /* older kernels lack these flags */
		memset(&p, 0, sizeof p);
		rc = io_uring_queue_init_params(depth, &u->ring, &p);
	}
	if (rc < 0) {
		free(u);
		return ib_fail(msg, IBSTORE_EUNSUPPORTED, "io_uring refused: %s", strerror(-rc));
	}
	u->fds = fds;
	u->depth = depth;
	u->fixed_files = io_uring_register_files(&u->ring, fds, nfds) == 0;
	if (bufs && bufs->n) {
		struct iovec iov[8];
		unsigned n = bufs->n < 8 ? bufs->n : 8;
		for (unsigned i = 0; i < n; i++)
			iov[i] = (struct iovec){bufs->base[i], bufs->len[i]};
		/* ENOMEM under an ordinary RLIMIT_MEMLOCK: plain reads then */
		u->io.registered = u->fixed_files && io_uring_register_buffers(&u->ring, iov, n) == 0;
	}
	u->io.name = "io_uring";
	u->io.submit = uring_submit;
	u->io.reap = uring_reap;
	u->io.destroy = uring_destroy;
	*out = &u->io;
	return 0;
}
