/*
 * io_pread.c — the portable read backend: a pool of threads calling pread,
 * used where io_uring is refused (seccomp, kernel.io_uring_disabled) or on
 * request.  Produces the same completions as io_uring.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "io.h"

typedef struct pread_io {
	ib_io io;
	const int *fds;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	ib_fifo todo, finished;
	unsigned inflight; /* submitted, not yet reaped */
	int stop;
	unsigned nthreads;
	pthread_t th[64];
} pread_io;

static void do_read(pread_io *p, ib_req *r)
{
	while (r->done < r->need) {
		ssize_t n = pread(p->fds[r->fd], r->buf + r->done, r->len - r->done,
				  (off_t)(r->off + r->done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->err = -errno;
			return;
		}
		if (n == 0)
			return; /* the file ended: the owner sees done < need */
		r->done += (uint32_t)n;
	}
}

static void *worker(void *arg)
{
	pread_io *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->todo.n == 0) /* woken by pread_submit, pread_destroy */
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		ib_req *r = ib_fifo_pop(&p->todo);
		pthread_mutex_unlock(&p->mu);
		do_read(p, r);
		pthread_mutex_lock(&p->mu);
		/* the finished ring has room for every submitted request */
		ib_fifo_push(&p->finished, r);
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int pread_submit(ib_io *io, ib_req **reqs, unsigned n)
{
	pread_io *p = (pread_io *)io;
	pthread_mutex_lock(&p->mu);
	/* room in both queues first: all or nothing (a refused request is
	 * never read into its buffer later), and a worker never allocates */
	int rc = ib_fifo_reserve(&p->finished, p->inflight + n + p->finished.n);
	if (!rc)
		rc = ib_fifo_reserve(&p->todo, p->todo.n + n);
	for (unsigned i = 0; i < n && !rc; i++) {
		ib_fifo_push(&p->todo, reqs[i]); /* cannot fail: reserved */
		p->inflight++;
	}
	pthread_cond_broadcast(&p->work); /* wakes worker()'s wait for todo */
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int pread_reap(ib_io *io, ib_req **out, unsigned max, unsigned min)
{
	pread_io *p = (pread_io *)io;
	unsigned got = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (got < max && p->finished.n)
			out[got++] = ib_fifo_pop(&p->finished);
		if (got >= min || got == max || p->inflight == got)
			break;
		pthread_cond_wait(&p->done, &p->mu); /* woken by worker() per finished read */
	}
	p->inflight -= got;
	pthread_mutex_unlock(&p->mu);
	return (int)got;
}

static void pread_destroy(ib_io *io)
{
	pread_io *p = (pread_io *)io;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->todo.v);
	free(p->finished.v);
	free(p);
}

int ib_io_pread_create(const int *fds, unsigned nfds, unsigned threads, ib_io **out,
		       char *msg)
{
	(void)nfds;
	pread_io *p = calloc(1, sizeof *p);
	if (!p)
		return ib_fail(msg, IBSTORE_ENOMEM, "out of memory");
	p->fds = fds;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->th[i], NULL, worker, p) != 0) {
			p->nthreads = i;
			pread_destroy(&p->io);
			return ib_fail(msg, IBSTORE_ENOMEM, "cannot start pread threads");
		}
		p->nthreads = i + 1;
	}
	p->io.name = "pread";
	p->io.submit = pread_submit;
	p->io.reap = pread_reap;
	p->io.destroy = pread_destroy;
	*out = &p->io;
	return 0;
}
