/*
 * writer_pool.c — compression, and with opts.jobs > 1 the worker pool.
 *
 * The samples go through a bounded queue of slots: ibstore_writer_add()
 * checks what it can synchronously (sizes, duplicate keys), copies the
 * sample into a slot and returns; worker threads compress and checksum
 * slots in any order, and whichever worker completes the oldest unwritten
 * slot appends the completed slots to the shard strictly in id order.  The
 * bytes written are therefore the same for every number of jobs.  The
 * caller's thread alone touches the catalog, the sample index and the
 * statistics (it takes a slot's index entry back when it reuses the slot);
 * the writing worker alone touches the shard files.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"
#include "writer_int.h"

/* Compresses into *cbuf (grown as needed); *stored points at the bytes to store. */
int wr_compress(const ibstore_writer_opts *o, const void *data, size_t len, uint8_t **cbuf,
		size_t *cbuf_cap, uint32_t *codec, const void **stored, size_t *stored_len)
{
	*stored = data;
	*codec = IBSTORE_CODEC_NONE;
	*stored_len = len;
	if (o->compress == IBSTORE_COMPRESS_NONE)
		return 0;
	size_t bound = ib_compress_bound(len);
	if (bound == 0)
		return 0; /* beyond lz4's input limit: stored raw */
	if (bound > *cbuf_cap) {
		uint8_t *b = realloc(*cbuf, bound);
		if (!b)
			return IBSTORE_ENOMEM;
		*cbuf = b;
		*cbuf_cap = bound;
	}
	int rc = ib_compress(o->compress, o->lz4hc_level, data, len, *cbuf, *cbuf_cap, codec,
			     stored_len);
	if (rc)
		return rc;
	if (*codec != IBSTORE_CODEC_NONE)
		*stored = *cbuf;
	return 0;
}

/* Appends completed slots in order; called by a worker holding p->mu. */
static void write_completed(ibstore_writer *w, pool *p)
{
	p->writing = 1;
	for (;;) {
		slot *s = &p->slots[p->next_write % p->nslots];
		if (p->next_write == p->head || s->state != S_DONE)
			break;
		int failed = p->rc;
		pthread_mutex_unlock(&p->mu);
		int rc = 0;
		if (!failed && s->rc) {
			rc = s->rc;
			snprintf(w->ioerr, sizeof w->ioerr, "sample %" PRIu64 ": %s", s->id,
				 rc == IBSTORE_ENOMEM ? "out of memory" : "compression failed");
		} else if (!failed) {
			rc = wr_write_record(w, s->id, s->label, s->codec, s->stored, s->slen,
					     s->len, s->hash, s->entry);
		}
		pthread_mutex_lock(&p->mu);
		if (rc && !p->rc)
			p->rc = rc;
		s->state = S_WRITTEN;
		p->next_write++;
		pthread_cond_broadcast(&p->done);
	}
	p->writing = 0;
}

static void *worker(void *arg)
{
	ibstore_writer *w = arg;
	pool *p = w->pool;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->claim == p->head) /* woken by add_queued, pool_stop */
			pthread_cond_wait(&p->work, &p->mu);
		if (p->claim == p->head)
			break; /* stopping and nothing left */
		slot *s = &p->slots[p->claim % p->nslots];
		p->claim++;
		s->state = S_BUSY;
		int skip = p->rc;
		pthread_mutex_unlock(&p->mu);
		if (!skip) {
			s->rc = wr_compress(&w->opts, s->data, s->len, &s->cbuf, &s->cbuf_cap,
					    &s->codec, &s->stored, &s->slen);
			if (!s->rc)
				s->hash = ib_hash(s->stored, s->slen, s->id);
		}
		pthread_mutex_lock(&p->mu);
		s->state = S_DONE;
		if (!p->writing)
			write_completed(w, p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void wr_pool_stop(ibstore_writer *w)
{
	pool *p = w->pool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

void wr_pool_free(ibstore_writer *w)
{
	pool *p = w->pool;
	if (!p)
		return;
	wr_pool_stop(w);
	for (size_t i = 0; i < p->nslots; i++) {
		free(p->slots[i].data);
		free(p->slots[i].cbuf);
	}
	free(p->slots);
	free(p->threads);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
	w->pool = NULL;
}

int wr_pool_start(ibstore_writer *w)
{
	int jobs = w->opts.jobs;
	pool *p = calloc(1, sizeof *p);
	if (!p)
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	p->nslots = (size_t)jobs * 4;
	p->slots = calloc(p->nslots, sizeof *p->slots);
	p->threads = calloc((size_t)jobs, sizeof *p->threads);
	if (!p->slots || !p->threads) {
		free(p->slots);
		free(p->threads);
		free(p);
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	w->pool = p;
	for (int i = 0; i < jobs; i++) {
		int e = pthread_create(&p->threads[i], NULL, worker, w);
		if (e) {
			wr_pool_free(w);
			return ib_fail(w->errmsg, IBSTORE_ENOMEM, "cannot start a writer thread: %s",
				     strerror(e));
		}
		p->nthreads++;
	}
	return 0;
}

/* Takes back written slots, oldest first (caller's thread, p->mu held). */
static int reclaim_written(ibstore_writer *w, pool *p)
{
	while (p->reclaim < p->next_write) {
		slot *s = &p->slots[p->reclaim % p->nslots];
		p->reclaim++;
		p->queued_bytes -= s->len;
		s->state = S_FREE;
		if (p->rc)
			continue;
		int rc = wr_account(w, s->id, s->label, s->codec, s->slen, s->len, s->entry);
		if (rc)
			return rc;
	}
	if (p->rc) {
		w->state = W_FAILED;
		return ib_fail(w->errmsg, p->rc, "%s", w->ioerr);
	}
	return 0;
}

/* Waits until every queued slot is written and taken back. */
int wr_pool_drain(ibstore_writer *w)
{
	pool *p = w->pool;
	int rc;
	pthread_mutex_lock(&p->mu);
	while (!(rc = reclaim_written(w, p)) && p->reclaim < p->head)
		pthread_cond_wait(&p->done, &p->mu); /* woken by write_completed per slot */
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int wr_add_queued(ibstore_writer *w, const void *data, size_t len, int32_t label, const char *key,
		  uint64_t *id_out)
{
	pool *p = w->pool;
	uint64_t id = w->next_id;
	int rc;

	/* Whether it fits in a shard is known only once compressed: such a
	 * sample is added synchronously after the queue has drained. */
	if (ib_first_record_offset(w->opts.alignment) + IB_RECORD_HEADER_SIZE + len >
	    w->opts.shard_size) {
		if ((rc = wr_pool_drain(w)))
			return rc;
		return wr_add_now(w, data, len, label, key, id_out);
	}
	pthread_mutex_lock(&p->mu);
	while (!(rc = reclaim_written(w, p)) &&
	       (p->head - p->reclaim == p->nslots ||
		(p->head > p->reclaim && p->queued_bytes + len > QUEUE_BYTES)))
		pthread_cond_wait(&p->done, &p->mu); /* woken by write_completed per slot */
	pthread_mutex_unlock(&p->mu);
	if (rc)
		return rc;
	if ((rc = wr_grow_index(w, id)))
		return rc;
	if (key && *key && (rc = wr_add_key(w, key, id)))
		return rc;

	/* The slot at head is free and no worker looks at it until queued. */
	slot *s = &p->slots[p->head % p->nslots];
	if (len > s->cap) {
		uint8_t *b = realloc(s->data, len);
		if (!b) {
			w->state = W_FAILED; /* the key is already recorded */
			return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory for a %zu-byte sample", len);
		}
		s->data = b;
		s->cap = len;
	}
	if (len)
		memcpy(s->data, data, len);
	s->len = len;
	s->id = id;
	s->label = label;
	s->rc = 0;
	pthread_mutex_lock(&p->mu);
	s->state = S_QUEUED;
	p->head++;
	p->queued_bytes += len;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	w->next_id = id + 1;
	if (id_out)
		*id_out = id;
	return 0;
}
