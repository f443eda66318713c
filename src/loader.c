/*
 * loader.c — the loader's public calls and an epoch's lifecycle.  Per
 * epoch: the run's plan is sliced for this rank and put in emission order
 * (loader_order.c) before any I/O, the path to the shards is chosen
 * (loader_path.c), and the threads (loader_pipeline.c) turn the order into
 * windows of reads (loader_readplan.c) and decoded batches in memory of
 * loader_mem.c, which the consumer takes in order.  Pruned samples produce
 * no request.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "abi.h"
#include "internal.h"
#include "loader_int.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ib_loader_set_delays(ibstore_loader *l, const ib_loader_delays *d)
{
	pthread_mutex_lock(&l->sync.mu);
	l->sync.delay = *d;
	pthread_mutex_unlock(&l->sync.mu);
}

/* ---- options ------------------------------------------------------ */

void ib_loader_opts_defaults(ibstore_loader_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->drop_last = -1;
	o->direct = -1;
	o->prefetch = 0;
	o->queue_depth = 64;
	o->verify = 1;
	o->gap = 32 << 10;
	o->max_read = 1 << 20;
	o->budget = (uint64_t)512 << 20;
}

static int check_loader_opts(ibstore_loader *l)
{
	ibstore_loader_opts *o = &l->cfg.o;
	const ibstore_run_opts *ro = &l->cfg.ro;
	if (o->batch_size && o->batch_size != ro->batch_size)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "batch size %" PRIu32 " differs from the run's %"
			     PRIu32, o->batch_size, ro->batch_size);
	if (o->drop_last >= 0 && !!o->drop_last != !!ro->drop_last)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "drop_last differs from the run's");
	if (o->queue_depth == 0 || o->queue_depth > 4096)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "queue depth must be in 1..4096");
	if (o->backend < IBSTORE_BACKEND_AUTO || o->backend > IBSTORE_BACKEND_MMAP ||
	    o->order < IBSTORE_ORDER_RANDOM || o->order > IBSTORE_ORDER_LOCALITY ||
	    o->corrupt < IBSTORE_CORRUPT_FAIL || o->corrupt > IBSTORE_CORRUPT_SKIP)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "unknown backend, order or corrupt policy");
	if (o->max_read < 4096 || o->max_read > ((uint64_t)1 << 30))
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "max_read must be in 4 KiB .. 1 GiB");
	if (o->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		/* leave a core to the training: with one decode thread per core,
		 * PyTorch's own threads slowed a CNN epoch from 6 s to 70 s */
		o->threads = n > 1 ? (uint32_t)(n - 1) : 1;
	}
	if (o->threads > 64)
		o->threads = 64;
	return 0;
}

/* The image stage's options, copied (the caller's pointer is not kept). */
static int setup_images(ibstore_loader *l)
{
	ib_loader_cfg *c = &l->cfg;
	if (!c->o.images)
		return 0;
	int rc = ib_image_opts_adopt(&c->img, c->o.images, l->errmsg, sizeof l->errmsg);
	c->o.images = NULL;
	if (rc || (rc = ib_image_opts_check(&c->img, l->errmsg, sizeof l->errmsg)))
		return rc;
	c->images = 1;
	c->img_size = ib_image_sample_size(&c->img);
	c->img_seed = c->img.seed ? c->img.seed : c->ro.prune.seed;
	return 0;
}

/* ---- open / close ---------------------------------------------------- */

IB_API int ibstore_loader_open(ibstore_dataset *ds, ibstore_run *run,
			       const ibstore_loader_opts *opts, ibstore_loader **out)
{
	if (!out)
		return IBSTORE_EINVAL;
	ibstore_loader *l = calloc(1, sizeof *l);
	*out = l;
	if (!l)
		return IBSTORE_ENOMEM;
	if (!ds || !ib_dataset_is_open(ds) || !run)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "an open dataset and run are needed");
	ib_loader_cfg *c = &l->cfg;
	c->ds = ds;
	c->run = run;
	c->about = ib_dataset_about(ds);
	c->samples = c->about->samples;
	c->shards = c->about->shards;
	int rc = ib_loader_opts_adopt(&c->o, opts, l->errmsg, sizeof l->errmsg);
	if (rc)
		return rc;
	rc = ibstore_run_config_get(run, &c->ro);
	if (rc)
		return ib_fail(l->errmsg, rc, "the run is not open");
	if (c->ro.samples != c->samples)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "the run has %" PRIu64
			     " samples, the dataset %" PRIu64, c->ro.samples, c->samples);
	if ((rc = check_loader_opts(l)) || (rc = setup_images(l)))
		return rc;
	l->st.backend = "none";
	if ((rc = ib_path_open_fds(l)))
		return rc;
	if ((rc = ib_mem_setup(l)) || (rc = ib_path_open_backend(l)) ||
	    (rc = ib_pipeline_start(l)))
		return rc;
	l->st.backend = l->path.io->name;
	l->st.registered = l->path.io->registered;
	l->st.direct = c->o.direct == 1;
	l->errmsg[0] = '\0';
	return 0;
}

static void free_epoch(ib_loader_epoch *ep)
{
	free(ep->slots);
	free(ep->order);
	free(ep->order_w);
	free(ep->reported);
	free(ep->in_plan);
	free(ep->pruned_upto);
	free(ep->batch_need);
	ep->pruned_upto = NULL;
	ep->batch_need = NULL;
	ep->slots = NULL;
	ep->order = NULL;
	ep->order_w = NULL;
	ep->reported = NULL;
	ep->in_plan = NULL;
	ep->nbatches = 0;
}

/* Waits until no thread touches the epoch, then frees it.  Batches the
 * caller still holds stay valid until released. */
static void drain(ibstore_loader *l)
{
	pthread_mutex_lock(&l->sync.mu);
	l->ep.active = 0;
	while (!ib_pipeline_idle(l)) /* woken by wake_drain() (see cv_cons in loader_int.h) */
		pthread_cond_wait(&l->sync.cv_cons, &l->sync.mu);
	for (uint64_t b = 0; b < l->ep.nbatches && l->ep.slots; b++)
		if (l->ep.slots[b])
			ib_mem_drop_batch(l, l->ep.slots[b]);
	ib_pipeline_reset(l);
	ib_mem_reset(l);
	pthread_mutex_unlock(&l->sync.mu);
	free_epoch(&l->ep);
}

IB_API void ibstore_loader_close(ibstore_loader *l)
{
	if (!l)
		return;
	if (l->sync.threads_started) {
		drain(l);
		ib_pipeline_stop(l);
	}
	ib_path_close(l);
	ib_pipeline_free(l);
	ib_mem_free(l);
	free(l);
}

IB_API const char *ibstore_loader_errmsg(const ibstore_loader *l)
{
	return l ? l->errmsg : "no loader handle (out of memory?)";
}

/* ---- epochs -------------------------------------------------------- */

/* This rank's slice of the plan in emission order, and what the plan
 * prunes (for the read accounting). */
static int build_order(ibstore_loader *l)
{
	ib_loader_epoch *ep = &l->ep;
	const ibstore_plan *p = ibstore_run_plan(l->cfg.run);
	uint64_t n, N = l->cfg.samples;
	const uint64_t *slice_ids;
	const float *slice_w;
	int rc = ibstore_run_slice(l->cfg.run, &slice_ids, &slice_w, &n);
	if (rc)
		return ib_fail(l->errmsg, rc, "the run has no slice for epoch %" PRIu32, ep->epoch);
	/* a copy: the locality order permutes it, the run's slice stays as planned */
	ep->order = malloc((n ? n : 1) * sizeof *ep->order);
	ep->order_w = malloc((n ? n : 1) * sizeof *ep->order_w);
	ep->in_plan = calloc((N + 7) / 8 + 1, 1);
	ep->pruned_upto = malloc((N + 1) * sizeof *ep->pruned_upto);
	if (!ep->order || !ep->order_w || !ep->in_plan || !ep->pruned_upto)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	if (n) {
		memcpy(ep->order, slice_ids, n * sizeof *ep->order);
		memcpy(ep->order_w, slice_w, n * sizeof *ep->order_w);
	}
	uint64_t avg = 40 + l->cfg.about->bytes_stored / (N ? N : 1);
	if (l->cfg.o.order == IBSTORE_ORDER_LOCALITY &&
	    ib_order_locality(l->cfg.ro.prune.seed, ep->epoch, avg, ep->order, ep->order_w, n))
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	ib_entries ix = ib_path_entries(l);
	ep->pruned_bytes = ib_pruned_prefix(&ix, p->ids, p->len, ep->in_plan, ep->pruned_upto);
	ep->len = n;
	return 0;
}

/* Each batch's decoded bytes, which must fit a window's share of the
 * budget. */
static int size_batches(ibstore_loader *l)
{
	ib_loader_epoch *ep = &l->ep;
	ib_entries ix = ib_path_entries(l);
	ib_batch_needs(&ix, ep->order, ep->len, l->cfg.ro.batch_size, ep->nbatches,
		       ep->batch_need);
	for (uint64_t b = 0; l->cfg.images && b < ep->nbatches; b++) { /* dense images */
		uint64_t lo = b * l->cfg.ro.batch_size, hi = lo + l->cfg.ro.batch_size;
		ep->batch_need[b] = ((hi < ep->len ? hi : ep->len) - lo) * l->cfg.img_size;
	}
	for (uint64_t b = 0; b < ep->nbatches; b++)
		if (ep->batch_need[b] > l->mem.wcap)
			return ib_fail(l->errmsg, IBSTORE_ETOOBIG,
				     "batch %" PRIu64 " decodes to %" PRIu64 " bytes but the budget "
				     "leaves %" PRIu64 " per window; raise the budget or lower the "
				     "batch size", b, ep->batch_need[b], l->mem.wcap);
	return 0;
}

IB_API int ibstore_loader_epoch_begin(ibstore_loader *l, uint32_t epoch, ibstore_epoch_info *info)
{
	if (!l || !l->path.io)
		return IBSTORE_EINVAL;
	ib_loader_epoch *ep = &l->ep;
	if (ep->slots)
		drain(l); /* the previous epoch was abandoned */
	ibstore_epoch_info ei;
	int rc = ibstore_run_epoch_begin(l->cfg.run, epoch, &ei);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->cfg.run));
	ep->epoch = epoch;
	if ((rc = ib_path_choose(l)) || (rc = build_order(l)))
		return rc;
	ep->nbatches = ei.batches;
	ep->slots = calloc(ep->nbatches ? ep->nbatches : 1, sizeof *ep->slots);
	ep->reported = calloc(ep->nbatches ? ep->nbatches : 1, 1);
	ep->batch_need = malloc((ep->nbatches ? ep->nbatches : 1) * sizeof *ep->batch_need);
	if (!ep->slots || !ep->reported || !ep->batch_need)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	if ((rc = size_batches(l)))
		return rc;
	ep->cursor = ei.cursor;
	/* every counter anew; backend, direct and registered describe the path */
	ib_loader_counters *st = &l->st;
	st->epoch = epoch;
	st->kept = ei.plan.kept;
	st->pruned = ei.plan.pruned;
	st->batches = 0;
	st->samples = 0;
	st->io_wait = 0;
	st->bytes_read = 0;
	st->read_around = 0;
	st->requests = 0;
	st->pruned_requested = 0;
	st->corrupt_skipped = 0;
	st->bytes_skipped = 0;
	st->seconds = 0;
	st->t_begin = now();
	pthread_mutex_lock(&l->sync.mu);
	l->flow.io_failed = 0;
	l->flow.next_plan = ep->next_take = ei.cursor;
	ep->active = 1;
	pthread_cond_broadcast(&l->sync.cv_io);
	pthread_mutex_unlock(&l->sync.mu);
	if (info)
		*info = ei;
	return 0;
}

IB_API int ibstore_loader_next(ibstore_loader *l, const ibstore_batch **out)
{
	if (!l || !out)
		return IBSTORE_EINVAL;
	*out = NULL;
	ib_loader_epoch *ep = &l->ep;
	if (!ep->slots)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "no epoch has begun");
	double t0 = now();
	pthread_mutex_lock(&l->sync.mu);
	if (ep->next_take >= ep->nbatches) {
		pthread_mutex_unlock(&l->sync.mu);
		return 0;
	}
	lbatch *b;
	while (!(b = ep->slots[ep->next_take]) || b->status != B_READY) {
		if (l->flow.io_failed) {
			pthread_mutex_unlock(&l->sync.mu);
			return ib_fail(l->errmsg, l->flow.io_failed, "%s", l->flow.io_msg);
		}
		/* woken by decode_one (batch ready) or io_fail */
		pthread_cond_wait(&l->sync.cv_cons, &l->sync.mu);
	}
	if (b->err) {
		pthread_mutex_unlock(&l->sync.mu);
		return ib_fail(l->errmsg, b->err, "%s", b->errmsg ? b->errmsg : ibstore_strerror(b->err));
	}
	b->status = B_TAKEN;
	l->mem.untaken -= b->data_cap;
	pthread_cond_signal(&l->sync.cv_io); /* a window's share may be free again */
	ep->next_take++;
	l->st.batches++;
	l->st.samples += b->pub.n;
	l->st.io_wait += now() - t0;
	pthread_mutex_unlock(&l->sync.mu);
	*out = &b->pub;
	return 0;
}

IB_API void ibstore_loader_release(ibstore_loader *l, const ibstore_batch *batch)
{
	if (!batch)
		return;
	lbatch *b = (lbatch *)batch; /* pub is the first member */
	if (atomic_load(&b->detached)) { /* its epoch (or loader) is gone */
		ib_batch_free(b);
		return;
	}
	if (!l)
		return; /* a live batch needs its loader */
	pthread_mutex_lock(&l->sync.mu);
	if (atomic_load(&b->detached)) { /* the epoch ended meanwhile */
		pthread_mutex_unlock(&l->sync.mu);
		ib_batch_free(b);
		return;
	}
	if (l->ep.slots && b->index < l->ep.nbatches && l->ep.slots[b->index] == b)
		l->ep.slots[b->index] = NULL;
	ib_give_arena(l, b);
	pthread_mutex_unlock(&l->sync.mu);
	ib_batch_free(b);
}

IB_API int ibstore_loader_report(ibstore_loader *l, const ibstore_batch *batch,
				 const float *losses)
{
	if (!l || !batch || (batch->n && !losses))
		return IBSTORE_EINVAL;
	ib_loader_epoch *ep = &l->ep;
	if (!ep->slots || batch->epoch != ep->epoch || batch->index >= ep->nbatches)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "the batch is not of the current epoch");
	/* padding entries (IBSTORE_PADDING_WEIGHT) balance ranks: the rank that owns
	 * the sample reports its loss, so a padded copy is neither recorded nor
	 * checked (one rank refusing alone would stall the others' collectives) */
	size_t keep = 0;
	for (size_t i = 0; i < batch->n; i++)
		keep += !ibstore_is_padding(batch->weights[i]);
	int rc;
	if (keep == batch->n) {
		rc = ibstore_run_report(l->cfg.run, batch->ids, losses, batch->n);
	} else {
		uint64_t *ids = malloc((keep ? keep : 1) * sizeof *ids);
		float *ls = malloc((keep ? keep : 1) * sizeof *ls);
		rc = ids && ls ? 0 : IBSTORE_ENOMEM;
		for (size_t i = 0, k = 0; !rc && i < batch->n; i++) {
			if (!ibstore_is_padding(batch->weights[i])) {
				ids[k] = batch->ids[i];
				ls[k++] = losses[i];
			}
		}
		if (!rc)
			rc = ibstore_run_report(l->cfg.run, ids, ls, keep);
		free(ids);
		free(ls);
	}
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->cfg.run));
	ep->reported[batch->index] = 1;
	uint64_t adv = 0;
	while (ep->cursor < ep->nbatches && ep->reported[ep->cursor]) {
		ep->cursor++;
		adv++;
	}
	if (adv && (rc = ibstore_run_advance(l->cfg.run, adv)))
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->cfg.run));
	return 0;
}

static void fill_io_stats(ibstore_loader *l)
{
	uint64_t req = l->st.pruned_requested;
	l->st.bytes_skipped = l->ep.pruned_bytes > req ? l->ep.pruned_bytes - req : 0;
	l->st.seconds = now() - l->st.t_begin;
}

IB_API int ibstore_loader_epoch_end(ibstore_loader *l)
{
	if (!l || !l->ep.slots)
		return l ? ib_fail(l->errmsg, IBSTORE_ESTATE, "no epoch has begun") : IBSTORE_EINVAL;
	if (l->ep.next_take < l->ep.nbatches)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "%" PRIu64 " batches of the epoch were not taken",
			     l->ep.nbatches - l->ep.next_take);
	pthread_mutex_lock(&l->sync.mu);
	fill_io_stats(l);
	ibstore_epoch_io io = {l->st.bytes_read, l->st.bytes_skipped, l->st.seconds};
	pthread_mutex_unlock(&l->sync.mu);
	int rc = ibstore_run_epoch_end(l->cfg.run, &io);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->cfg.run));
	drain(l);
	return 0;
}

IB_API int ibstore_loader_stats_get_sized(const ibstore_loader *l, ibstore_loader_stats *out,
					  size_t size)
{
	if (!l || !out)
		return IBSTORE_EINVAL;
	ibstore_loader *m = (ibstore_loader *)l;
	pthread_mutex_lock(&m->sync.mu);
	if (m->ep.slots)
		fill_io_stats(m);
	const ib_loader_counters *st = &m->st;
	ibstore_loader_stats s;
	memset(&s, 0, sizeof s);
	s.epoch = st->epoch;
	s.batches = st->batches;
	s.samples = st->samples;
	s.kept = st->kept;
	s.pruned = st->pruned;
	s.bytes_read = st->bytes_read;
	s.bytes_skipped = st->bytes_skipped;
	s.read_around = st->read_around;
	s.requests = st->requests;
	s.corrupt_skipped = st->corrupt_skipped;
	s.io_wait = st->io_wait;
	s.seconds = st->seconds;
	s.backend = st->backend;
	s.buffers = m->mem.buffers;
	s.direct = st->direct;
	s.registered = st->registered;
	pthread_mutex_unlock(&m->sync.mu);
	return ib_loader_stats_emit(out, size, &s, m->errmsg, sizeof m->errmsg);
}
