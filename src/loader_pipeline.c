/*
 * loader_pipeline.c — the threads of an epoch.  The I/O thread cuts the
 * epoch's order into windows of whole batches, gives each its batches and
 * arenas, plans its reads (loader_readplan.c) and runs them through the
 * backend into read slots; decode threads verify and decompress each
 * read's records into their batches' arenas as soon as it lands, and a
 * batch whose last sample is decoded becomes ready for the consumer.  On
 * the mapped path a planned batch goes to the decoders at once.  The
 * waits and who wakes them: loader_int.h, ib_loader_sync.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "loader_int.h"

/* Sleeps `us` microseconds (the test delays of loader_hooks.h). */
static void pause_us(unsigned us)
{
	if (!us)
		return;
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void decoder_free(ib_decoder *d)
{
	ib_image_free(d->im);
	free(d->payload);
	*d = (ib_decoder){0};
}

static uint64_t batch_lo(const ibstore_loader *l, uint64_t b)
{
	return b * l->cfg.ro.batch_size;
}

static uint64_t batch_hi(const ibstore_loader *l, uint64_t b)
{
	uint64_t hi = (b + 1) * l->cfg.ro.batch_size;
	return hi < l->ep.len ? hi : l->ep.len;
}

/* A read is complete: its records go to the decoders (under mu). */
static int complete(ibstore_loader *l, ib_req *r)
{
	int rc = ib_fifo_push(&l->flow.dq, r);
	if (!rc)
		pthread_cond_signal(&l->sync.cv_dec);
	return rc;
}

/* A batch of the window with its arena; on the mapped path, handed to the
 * decoders at once (both under mu). */
static int plan_batch(ibstore_loader *l, window *w, uint64_t b)
{
	size_t first = w->nrecs;
	uint64_t lo = batch_lo(l, b), hi = batch_hi(l, b);
	lbatch *lb = ib_batch_new((size_t)(hi - lo));
	if (!lb)
		return IBSTORE_ENOMEM;
	lb->index = b;
	lb->n = (size_t)(hi - lo);
	lb->pending = (uint32_t)lb->n;
	lb->status = B_PLANNED;
	for (uint64_t i = lo; i < hi; i++) {
		ib_index_entry *e = &lb->ent[i - lo];
		ib_dataset_entry(l->cfg.ds, l->ep.order[i], e);
		lb->ids[i - lo] = l->ep.order[i];
		lb->weights[i - lo] = l->ep.order_w[i];
		lb->bad[i - lo] = 0;
		lb->offsets[i - lo] = lb->data_cap; /* samples back to back */
		lb->data_cap += l->cfg.images ? l->cfg.img_size : e->size;
		w->recs[w->nrecs++] = (wrec){.id = l->ep.order[i], .b = lb,
					     .pos = (uint32_t)(i - lo), .e = *e};
	}
	pthread_mutex_lock(&l->sync.mu);
	lb->data = ib_take_arena(l, lb);
	l->mem.untaken += lb->data_cap;
	l->ep.slots[b] = lb;
	int rc = 0;
	if (!lb->data)
		rc = IBSTORE_ENOMEM;
	else if (l->path.use_map)
		rc = complete(l, ib_path_map_batch(l, w, first, lb->n));
	pthread_mutex_unlock(&l->sync.mu);
	return rc;
}

/* Picks the batches of the next window and builds its requests.  Runs on
 * the I/O thread without the lock: slots [b0, b1) are its own until their
 * status says otherwise. */
static int plan_window(ibstore_loader *l, window *w, uint64_t b0)
{
	uint64_t b1 = ib_window_end(l->ep.batch_need, l->ep.nbatches, l->mem.wcap, b0);
	w->b0 = b0;
	w->b1 = b1;
	w->nrecs = 0;
	w->nreqs = 0;
	size_t total = (size_t)(batch_hi(l, b1 - 1) - batch_lo(l, b0));
	if (ib_grow((void **)&w->recs, &w->caprecs, total, sizeof *w->recs))
		return IBSTORE_ENOMEM;
	if (l->path.use_map) { /* decoders hold pointers into reqs: no realloc later */
		if (ib_grow((void **)&w->reqs, &w->capreqs, (size_t)(b1 - b0), sizeof *w->reqs))
			return IBSTORE_ENOMEM;
		pthread_mutex_lock(&l->sync.mu);
		w->undecoded = (size_t)(b1 - b0);
		pthread_mutex_unlock(&l->sync.mu);
	}
	for (uint64_t b = b0; b < b1; b++) {
		int rc = plan_batch(l, w, b);
		if (rc)
			return rc;
	}
	if (l->path.use_map)
		return 0;
	ib_readplan rp = {.ix = ib_path_entries(l),
			  .gap = l->cfg.o.gap, .max_read = l->cfg.o.max_read,
			  .direct = l->path.direct, .shards = l->cfg.shards,
			  .in_plan = l->ep.in_plan, .pruned_upto = l->ep.pruned_upto};
	ib_read_acct acct = {0, 0, 0};
	if (ib_plan_reads(&rp, w, (uint32_t)(w - l->flow.win), &acct))
		return IBSTORE_ENOMEM;
	pthread_mutex_lock(&l->sync.mu);
	l->st.bytes_read += acct.read;
	l->st.read_around += acct.read - acct.wanted;
	l->st.requests += w->nreqs;
	l->st.pruned_requested += acct.pruned;
	w->undecoded = w->nreqs;
	pthread_mutex_unlock(&l->sync.mu);
	return 0;
}

static void decode_one(ibstore_loader *l, ib_decoder *d);

/* ---- I/O thread ----------------------------------------------------- */

/* Takes planned reads that have a free slot to land in (under mu). */
static unsigned take_slots(ibstore_loader *l, ib_req **out, unsigned max)
{
	ib_loader_mem *m = &l->mem;
	unsigned n = 0;
	while (n < max && l->flow.pend.n && m->nfree) {
		ib_req *r = ib_fifo_pop(&l->flow.pend);
		r->slot = m->free_slot[--m->nfree];
		r->buf = m->rbuf + (size_t)r->slot * m->slot_size;
		r->buf_index = 0;
		out[n++] = r;
	}
	return n;
}

int ib_pipeline_idle(const ibstore_loader *l)
{
	const ib_loader_flow *f = &l->flow;
	return !f->io_inflight && !f->io_busy && !f->dq.n && !f->decoding;
}

/* Wakes drain() if it waits and its condition now holds (under mu). */
static void wake_drain(ibstore_loader *l)
{
	if (!l->ep.active && ib_pipeline_idle(l))
		pthread_cond_broadcast(&l->sync.cv_cons);
}

/* The I/O thread is back under the lock, holding nothing (under mu). */
static void io_done(ibstore_loader *l)
{
	l->flow.io_busy = 0;
	wake_drain(l);
}

static void io_fail(ibstore_loader *l, int rc, const char *what)
{
	l->flow.io_failed = rc;
	snprintf(l->flow.io_msg, sizeof l->flow.io_msg, "%s: %s", what, ibstore_strerror(rc));
	pthread_cond_broadcast(&l->sync.cv_cons); /* next() returns the failure */
}

static void *io_main(void *arg)
{
	ibstore_loader *l = arg;
	ib_loader_flow *f = &l->flow;
	ib_req *batch[256];
	ib_decoder dec = {0};
	pthread_mutex_lock(&l->sync.mu);
	while (!l->sync.stop) {
		window *w = NULL;
		uint64_t ahead = l->cfg.o.prefetch ? l->ep.next_take + l->cfg.o.prefetch : UINT64_MAX;
		/* a new window only while the decoded batches waiting for the
		 * consumer fill at most the other windows: the budget holds */
		if (l->ep.active && !f->io_failed && f->next_plan < l->ep.nbatches &&
		    f->next_plan < ahead && l->mem.untaken <= (uint64_t)(l->mem.nwin - 1) * l->mem.wcap)
			for (int i = 0; i < l->mem.nwin && !w; i++)
				if (!f->win[i].busy)
					w = &f->win[i];
		if (w) {
			w->busy = 1;
			uint64_t b0 = f->next_plan;
			f->io_busy = 1;
			pthread_mutex_unlock(&l->sync.mu);
			int rc = plan_window(l, w, b0);
			pause_us(l->sync.delay.plan_us);
			pthread_mutex_lock(&l->sync.mu);
			/* mapped batches went to decoding as planned, reads wait for slots */
			for (size_t i = 0; !rc && !l->path.use_map && i < w->nreqs; i++)
				rc = ib_fifo_push(&f->pend, &w->reqs[i]);
			if (rc)
				io_fail(l, rc, "read planning failed");
			else
				f->next_plan = w->b1;
			io_done(l);
			continue;
		}
		/* an abandoned epoch (active 0) sends no more reads: drain() waits */
		unsigned n = f->io_failed || !l->ep.active ? 0 : take_slots(l, batch, 256);
		if (n) {
			f->io_inflight += n;
			f->io_busy = 1;
			pthread_mutex_unlock(&l->sync.mu);
			for (unsigned i = 0; l->cfg.o.on_read && i < n; i++)
				l->cfg.o.on_read(l->cfg.o.on_read_ctx, batch[i]->shard, batch[i]->off,
						 batch[i]->len);
			int rc = l->path.io->submit(l->path.io, batch, n);
			pause_us(l->sync.delay.submit_us);
			pthread_mutex_lock(&l->sync.mu);
			if (rc) {
				f->io_inflight -= n; /* what the backend refused never lands */
				io_fail(l, rc, "read submission failed");
			}
			io_done(l);
			continue;
		}
		/* Reads that landed hold their slots until decoded, and the device
		 * completes in bursts: rather than sleep while a burst waits for
		 * the decoders, this thread decodes too, so slots come back and
		 * reads go out sooner (measured: cold epochs ~12% faster). */
		int help = f->dq.n > 0;
		if (f->io_inflight) {
			f->io_busy = 1;
			pthread_mutex_unlock(&l->sync.mu);
			int got = l->path.io->reap(l->path.io, batch, 256, help ? 0 : 1);
			pause_us(l->sync.delay.reap_us);
			pthread_mutex_lock(&l->sync.mu);
			if (got < 0) {
				io_fail(l, got, "read backend failed");
				io_done(l);
				continue;
			}
			for (int i = 0; i < got && !f->io_failed; i++)
				if (complete(l, batch[i]))
					io_fail(l, IBSTORE_ENOMEM, "decode queue");
			f->io_inflight -= (unsigned)got;
			io_done(l);
			if (got || !help)
				continue;
		}
		if (f->dq.n && (f->io_inflight || f->pend.n)) {
			decode_one(l, &dec); /* mapped batches are left to the decoders */
			continue;
		}
		if (f->io_inflight)
			continue; /* a decoder took the work: wait for reads instead */
		/* woken by epoch_begin, next, decode_one or close (see cv_io in
		 * loader_int.h) */
		pthread_cond_wait(&l->sync.cv_io, &l->sync.mu);
	}
	pthread_mutex_unlock(&l->sync.mu);
	decoder_free(&dec);
	return NULL;
}

/* ---- decode threads -------------------------------------------------- */

/* The mapped path reads records in plan order, scattered over the page
 * cache: each one would stall on memory (and on its page's translation)
 * without a hint a few records ahead. */
#define PREFETCH_AHEAD 3
#define PREFETCH_MAX 4096

static void prefetch_record(const wrec *wr)
{
	uint64_t len = rec_len(&wr->e);
	if (len > PREFETCH_MAX)
		len = PREFETCH_MAX;
	for (uint64_t o = 0; o < len; o += 64)
		__builtin_prefetch(wr->src + o);
}

/* Decodes the records one read brought, each into its batch's arena at
 * its planned offset.  No lock: every record has its own slot. */
/* The image stage for one record: its payload decoded into the thread's
 * buffer, then the image into `out`.  A sample that is no image of the
 * three formats, a broken one or a bomb is a corrupt sample, named. */
static int decode_image(ibstore_loader *l, ib_decoder *d, uint64_t id, const ib_index_entry *e,
			const uint8_t *rec, int flags, uint8_t *out, char *msg)
{
	if (!d->im && !(d->im = ib_image_new()))
		return ib_fail(msg, IBSTORE_ENOMEM, "sample %" PRIu64 ": out of memory", id);
	if (ib_grow((void **)&d->payload, &d->cap, e->size ? e->size : 1, 1))
		return ib_fail(msg, IBSTORE_ENOMEM, "sample %" PRIu64 ": out of memory", id);
	int rc = ib_dataset_decode(l->cfg.ds, id, e, rec, rec_len(e), flags, d->payload, msg);
	if (rc)
		return rc;
	char why[IB_ERRMSG_LEN];
	rc = ib_image_sample(d->im, &l->cfg.img, d->payload, e->size, l->cfg.img_seed,
			     l->ep.epoch, id, out, why, sizeof why);
	if (rc == IBSTORE_ENOMEM)
		return ib_fail(msg, rc, "sample %" PRIu64 ": out of memory", id);
	return rc ? ib_fail(msg, IBSTORE_ECORRUPT, "sample %" PRIu64 ": %s", id, why) : 0;
}

static void decode_request(ibstore_loader *l, ib_decoder *d, window *w, const ib_req *r)
{
	char msg[IB_ERRMSG_LEN];
	int io_err = r->err ? r->err : r->done < r->need ? -EIO : 0;
	int flags = (l->cfg.o.verify ? IB_DECODE_VERIFY : 0) | IB_DECODE_STREAM;
	uint32_t end = r->first_rec + r->nrecs;
	for (uint32_t k = r->first_rec; k < end; k++) {
		const wrec *wr = &w->recs[k];
		if (!r->buf && k + PREFETCH_AHEAD < end)
			prefetch_record(&w->recs[k + PREFETCH_AHEAD]);
		lbatch *b = wr->b;
		uint32_t pos = wr->pos;
		const ib_index_entry *e = &wr->e;
		uint64_t id = wr->id;
		int rc;
		if (io_err)
			rc = ib_fail(msg, IBSTORE_EIO, "%s offset %" PRIu64 ": reading sample %" PRIu64
				     ": %s", strrchr(ibstore_dataset_shard_path(l->cfg.ds, e->shard),
						     '/') + 1,
				     e->offset, id, strerror(-io_err));
		else if (l->cfg.images)
			rc = decode_image(l, d, id, e, r->buf ? r->buf + wr->rel : wr->src, flags,
					  b->data + b->offsets[pos], msg);
		else
			rc = ib_dataset_decode(l->cfg.ds, id, e, r->buf ? r->buf + wr->rel : wr->src,
					       rec_len(e), flags, b->data + b->offsets[pos], msg);
		b->labels[pos] = e->label;
		b->sizes[pos] = l->cfg.images ? (uint32_t)l->cfg.img_size : e->size;
		if (!rc)
			continue;
		b->bad[pos] = rc;
		if (l->cfg.o.corrupt == IBSTORE_CORRUPT_FAIL) {
			pthread_mutex_lock(&l->sync.mu);
			if (!b->err) { /* the first failure names the batch's problem */
				b->err = rc;
				b->errmsg = strdup(msg);
			}
			pthread_mutex_unlock(&l->sync.mu);
		}
	}
}

/* Every sample of the batch is decoded: leave out skipped ones (skip
 * policy) and describe the batch. */
static void finish_batch(ibstore_loader *l, lbatch *b)
{
	size_t out = 0, nskip = 0;
	uint64_t pos = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (b->bad[i]) {
			b->skipped[nskip++] = b->ids[i];
			continue;
		}
		if (out != i || pos != b->offsets[i]) {
			memmove(b->data + pos, b->data + b->offsets[i], b->sizes[i]);
			b->ids[out] = b->ids[i];
			b->weights[out] = b->weights[i];
			b->labels[out] = b->labels[i];
			b->sizes[out] = b->sizes[i];
		}
		b->offsets[out] = pos;
		pos += b->sizes[out];
		out++;
	}
	const ib_loader_cfg *c = &l->cfg;
	b->pub = (ibstore_batch){.epoch = l->ep.epoch, .index = b->index, .n = out,
				 .ids = b->ids, .labels = b->labels, .weights = b->weights,
				 .sizes = b->sizes, .offsets = b->offsets, .data = b->data,
				 .data_size = pos,
				 .sample_size = (uint32_t)(c->images ? c->img_size
								     : c->about->fixed_size),
				 .n_skipped = nskip, .skipped_ids = b->skipped};
	if (c->images) {
		int chw = c->img.layout == IBSTORE_LAYOUT_CHW;
		b->pub.ndim = 4;
		b->pub.shape[0] = (uint32_t)out;
		b->pub.shape[1] = chw ? 3 : c->img.height;
		b->pub.shape[2] = chw ? c->img.height : c->img.width;
		b->pub.shape[3] = chw ? c->img.width : 3;
		b->pub.dtype = c->img.dtype;
	}
	b->status = B_READY;
	l->st.corrupt_skipped += nskip;
}

/* Decodes the oldest completed read (called under mu, which it drops
 * while decoding) and hands on what that finishes: ready batches to the
 * consumer, the read slot and the window to the I/O thread. */
static void decode_one(ibstore_loader *l, ib_decoder *d)
{
	ib_req *r = ib_fifo_pop(&l->flow.dq);
	l->flow.decoding++;
	window *w = &l->flow.win[r->window];
	int abandoned = !l->ep.active; /* drain() frees its batches untaken */
	pthread_mutex_unlock(&l->sync.mu);
	if (!abandoned)
		decode_request(l, d, w, r);
	pthread_mutex_lock(&l->sync.mu);
	int ready = 0;
	for (uint32_t k = r->first_rec; k < r->first_rec + r->nrecs; k++) {
		lbatch *b = w->recs[k].b;
		/* active now, not when this read was taken: a batch whose other
		 * reads were skipped (epoch abandoned meanwhile) is never finished;
		 * active cannot come back before drain(), which waits for us */
		if (--b->pending == 0 && l->ep.active) {
			finish_batch(l, b);
			ready = 1;
		}
	}
	if (r->buf) { /* its slot is free again, and warm: reuse it first */
		l->mem.free_slot[l->mem.nfree++] = r->slot;
		r->buf = NULL;
		pthread_cond_signal(&l->sync.cv_io);
	}
	if (--w->undecoded == 0) {
		w->busy = 0; /* its batches are all planned and decoded */
		pthread_cond_signal(&l->sync.cv_io);
	}
	l->flow.decoding--;
	if (ready)
		pthread_cond_broadcast(&l->sync.cv_cons); /* next() may wait for it */
	wake_drain(l);
}

static void *dec_main(void *arg)
{
	ibstore_loader *l = arg;
	ib_decoder dec = {0};
	pthread_mutex_lock(&l->sync.mu);
	while (!l->sync.stop) {
		if (l->flow.dq.n)
			decode_one(l, &dec);
		else /* woken by complete() or close() */
			pthread_cond_wait(&l->sync.cv_dec, &l->sync.mu);
	}
	pthread_mutex_unlock(&l->sync.mu);
	decoder_free(&dec);
	return NULL;
}

/* ---- threads' lifetime ------------------------------------------------ */

int ib_pipeline_start(ibstore_loader *l)
{
	ib_loader_sync *s = &l->sync;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv_io, NULL);
	pthread_cond_init(&s->cv_dec, NULL);
	pthread_cond_init(&s->cv_cons, NULL);
	s->threads_started = 1;
	s->dec = calloc(l->cfg.o.threads, sizeof *s->dec);
	if (!s->dec)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	if (pthread_create(&s->io_thread, NULL, io_main, l))
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot start the I/O thread");
	s->threads_started = 2;
	for (unsigned i = 0; i < l->cfg.o.threads; i++) {
		if (pthread_create(&s->dec[i], NULL, dec_main, l))
			return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot start decode threads");
		s->ndec = i + 1;
	}
	return 0;
}

void ib_pipeline_stop(ibstore_loader *l)
{
	ib_loader_sync *s = &l->sync;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv_io);
	pthread_cond_broadcast(&s->cv_dec);
	pthread_mutex_unlock(&s->mu);
	if (s->threads_started > 1)
		pthread_join(s->io_thread, NULL);
	for (unsigned i = 0; i < s->ndec; i++)
		pthread_join(s->dec[i], NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv_io);
	pthread_cond_destroy(&s->cv_dec);
	pthread_cond_destroy(&s->cv_cons);
}

void ib_pipeline_reset(ibstore_loader *l)
{
	for (int i = 0; i < NWIN; i++)
		l->flow.win[i].busy = 0;
	ib_fifo_clear(&l->flow.pend); /* planned reads of the abandoned epoch */
}

void ib_pipeline_free(ibstore_loader *l)
{
	for (int i = 0; i < NWIN; i++) {
		window *w = &l->flow.win[i];
		free(w->recs);
		free(w->reqs);
		memset(w, 0, sizeof *w);
	}
	ib_fifo_free(&l->flow.pend);
	ib_fifo_free(&l->flow.dq);
	free(l->sync.dec);
}
