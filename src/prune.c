/*
 * prune.c — pruning policies: per-sample scores in, an epoch's plan out
 * (surviving ids in order, each with its gradient weight).  Pure code, no
 * I/O.  docs/PRUNING.md is the specification; compat mode reproduces
 * the reference package's numpy RandomState draws exactly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "slice.h"

/* ---- MT19937 as numpy's legacy RandomState uses it --------------------- */

#define MT_N 624
#define MT_M 397

typedef struct mt19937 {
	uint32_t s[MT_N];
	int i;
} mt19937;

static void mt_seed(mt19937 *mt, uint32_t seed)
{
	mt->s[0] = seed;
	for (int i = 1; i < MT_N; i++)
		mt->s[i] = 1812433253u * (mt->s[i - 1] ^ (mt->s[i - 1] >> 30)) + (uint32_t)i;
	mt->i = MT_N;
}

static void mt_refill(mt19937 *mt)
{
	for (int k = 0; k < MT_N; k++) {
		uint32_t y = (mt->s[k] & 0x80000000u) | (mt->s[(k + 1) % MT_N] & 0x7fffffffu);
		mt->s[k] = mt->s[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
	}
	mt->i = 0;
}

static uint32_t mt_next32(mt19937 *mt)
{
	if (mt->i >= MT_N)
		mt_refill(mt);
	uint32_t y = mt->s[mt->i++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	y ^= y >> 18;
	return y;
}

/* numpy's random_interval(max): masked rejection, inclusive bound. */
static uint64_t mt_interval(mt19937 *mt, uint64_t max)
{
	if (max == 0)
		return 0;
	uint64_t mask = max;
	for (int sh = 1; sh < 64; sh <<= 1)
		mask |= mask >> sh;
	uint64_t v;
	if (max <= 0xffffffffu) {
		while ((v = (mt_next32(mt) & mask)) > max)
			;
	} else {
		do {
			uint64_t hi = mt_next32(mt);
			v = ((hi << 32) | mt_next32(mt)) & mask;
		} while (v > max);
	}
	return v;
}

/* ---- native counter-based generator ------------------------------------ */

/* A draw depends only on (seed, epoch, stream, counter). */
typedef struct rng {
	int compat;
	mt19937 mt;
	uint64_t key;
	uint64_t ctr;
} rng;

static void rng_init(rng *r, int compat, uint64_t seed, uint32_t epoch, uint32_t stream)
{
	r->compat = compat;
	r->ctr = 0;
	if (compat)
		mt_seed(&r->mt, (uint32_t)(seed + epoch + 1));
	else
		r->key = ib_mix64(ib_mix64(seed ^ 0x6962737472ull) ^ ((uint64_t)stream << 32 | epoch));
}

/* Uniform in [0, max], inclusive. */
static uint64_t rng_upto(rng *r, uint64_t max)
{
	if (r->compat)
		return mt_interval(&r->mt, max);
	if (max == UINT64_MAX)
		return ib_mix64(r->key + 0x9e3779b97f4a7c15ull * ++r->ctr);
	uint64_t bound = max + 1;
	for (;;) {
		uint64_t x = ib_mix64(r->key + 0x9e3779b97f4a7c15ull * ++r->ctr);
		unsigned __int128 m = (unsigned __int128)x * bound;
		uint64_t low = (uint64_t)m;
		if (low >= bound || low >= (0 - bound) % bound)
			return (uint64_t)(m >> 64);
	}
}

/* Fisher–Yates as numpy's shuffle draws it: i from n-1 down to 1. */
static void fisher_yates(rng *r, uint32_t *a, uint64_t n)
{
	for (uint64_t i = n; i-- > 1;) {
		uint64_t j = rng_upto(r, i);
		uint32_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

#define BUCKET_BITS 8
#define BUCKETS (1u << BUCKET_BITS)

/*
 * Native shuffle of large arrays (Rao–Sandelius): every element goes to one
 * of 256 buckets drawn uniformly, then each bucket — small enough for the
 * cache — gets its own Fisher–Yates.  Uniform like one big Fisher–Yates,
 * without a cache miss per swap.  The bucket labels are drawn twice from
 * the same counters (to count, then to scatter) rather than stored.
 * `scratch` holds n values.
 */
static void shuffle(rng *r, uint32_t *a, uint64_t n, uint32_t *scratch)
{
	if (r->compat || n < (1u << 16)) {
		fisher_yates(r, a, n);
		return;
	}
	uint64_t count[BUCKETS + 1] = {0};
	uint64_t ctr0 = r->ctr;
	for (uint64_t i = 0; i < n; i += 8) {
		uint64_t x = ib_mix64(r->key + 0x9e3779b97f4a7c15ull * ++r->ctr);
		for (uint64_t k = 0; k < 8 && i + k < n; k++, x >>= BUCKET_BITS)
			count[(uint8_t)x + 1]++;
	}
	for (unsigned b = 0; b < BUCKETS; b++)
		count[b + 1] += count[b];
	uint64_t start[BUCKETS + 1];
	memcpy(start, count, sizeof start);
	r->ctr = ctr0;
	for (uint64_t i = 0; i < n; i += 8) {
		uint64_t x = ib_mix64(r->key + 0x9e3779b97f4a7c15ull * ++r->ctr);
		for (uint64_t k = 0; k < 8 && i + k < n; k++, x >>= BUCKET_BITS)
			scratch[count[(uint8_t)x]++] = a[i + k];
	}
	for (unsigned b = 0; b < BUCKETS; b++)
		fisher_yates(r, scratch + start[b], start[b + 1] - start[b]);
	memcpy(a, scratch, n * sizeof *a);
}

/*
 * Moves a uniformly random k-subset of a[0..n) to a[0..k).  Compat permutes
 * everything (numpy's choice(replace=False) does); native draws only
 * min(k, n-k) times.
 */
static void choose(rng *r, uint32_t *a, uint64_t n, uint64_t k, uint32_t *scratch)
{
	if (r->compat || k == n) {
		shuffle(r, a, n, scratch);
		return;
	}
	if (k <= n - k) {
		for (uint64_t i = 0; i < k; i++) {
			uint64_t j = i + rng_upto(r, n - 1 - i);
			uint32_t t = a[i];
			a[i] = a[j];
			a[j] = t;
		}
	} else {
		/* pick the n-k to drop into the tail */
		for (uint64_t i = n; i-- > k;) {
			uint64_t j = rng_upto(r, i);
			uint32_t t = a[i];
			a[i] = a[j];
			a[j] = t;
		}
	}
}

/* ---- options -------------------------------------------------------- */

void ib_prune_opts_defaults(ibstore_prune_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->policy = IBSTORE_POLICY_INFOBATCH;
	o->mode = IBSTORE_MODE_NATIVE;
	o->ratio = 0.5;
	o->delta = 0.875;
}

static int bad(char *msg, size_t len, const char *what)
{
	if (msg && len)
		snprintf(msg, len, "%s", what);
	return IBSTORE_EINVAL;
}

IB_API int ibstore_prune_opts_check(const ibstore_prune_opts *o, char *msg, size_t len)
{
	if (!o)
		return bad(msg, len, "no pruning options");
	ibstore_prune_opts p; /* the caller's options in this library's layout */
	int rc = ib_prune_opts_adopt(&p, o, msg, len);
	if (rc)
		return rc;
	o = &p;
	if (o->policy < IBSTORE_POLICY_INFOBATCH || o->policy > IBSTORE_POLICY_NONE)
		return bad(msg, len, "unknown policy");
	if (o->mode != IBSTORE_MODE_NATIVE && o->mode != IBSTORE_MODE_COMPAT)
		return bad(msg, len, "unknown mode");
	if (!(o->ratio >= 0.0 && o->ratio < 1.0))
		return bad(msg, len, "ratio must be in [0, 1)");
	if (!(o->delta >= 0.0 && o->delta <= 1.0))
		return bad(msg, len, "delta must be in [0, 1]");
	if (o->epochs == 0)
		return bad(msg, len, "the total number of epochs must be set (> 0)");
	if (!(o->ema >= 0.0 && o->ema < 1.0))
		return bad(msg, len, "ema momentum must be in [0, 1)");
	return 0;
}

IB_API int ibstore_prune_epoch_prunes(const ibstore_prune_opts *o, uint32_t epoch)
{
	ibstore_prune_opts p;
	if (!o || ib_prune_opts_adopt(&p, o, NULL, 0))
		return 0;
	o = &p;
	if (o->policy == IBSTORE_POLICY_NONE)
		return 0;
	double cut = o->delta * (double)o->epochs;
	/* the paper prunes while t < δC; the reference code while t+1 <= δC */
	if (o->mode == IBSTORE_MODE_COMPAT)
		return (double)epoch + 1.0 <= cut;
	return (double)epoch < cut;
}

IB_API float ibstore_prune_initial_score(const ibstore_prune_opts *o)
{
	ibstore_prune_opts p;
	if (!o || ib_prune_opts_adopt(&p, o, NULL, 0))
		return NAN;
	o = &p;
	return o->mode == IBSTORE_MODE_COMPAT ? 3.0f : NAN;
}

static double keep_fraction(const ibstore_prune_opts *o)
{
	double keep = 1.0 - o->ratio;
	return keep < 0.1 ? 0.1 : keep > 1.0 ? 1.0 : keep;
}

/* numpy's pairwise float32 summation (PW_BLOCKSIZE 128, 8 accumulators). */
static float pairwise_sum(const float *a, uint64_t n)
{
	if (n < 8) {
		float res = 0.f;
		for (uint64_t i = 0; i < n; i++)
			res += a[i];
		return res;
	}
	if (n <= 128) {
		float r[8];
		uint64_t i;
		for (int j = 0; j < 8; j++)
			r[j] = a[j];
		for (i = 8; i < n - (n % 8); i += 8)
			for (int j = 0; j < 8; j++)
				r[j] += a[i + j];
		float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
		for (; i < n; i++)
			res += a[i];
		return res;
	}
	uint64_t n2 = n / 2;
	n2 -= n2 % 8;
	return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* The threshold: compat, numpy's float32 mean of all scores; native, the
 * mean of the seen (non-NaN) scores, NaN when none was seen. */
static double threshold(const ibstore_prune_opts *o, const float *s, uint64_t n,
			uint64_t *unseen)
{
	*unseen = 0;
	if (n == 0)
		return NAN;
	if (o->mode == IBSTORE_MODE_COMPAT) {
		/* numpy reduces in chunks of its buffer size (8192 elements),
		 * each summed pairwise, the chunk sums added in order */
		float sum = 0.f;
		for (uint64_t i = 0; i < n; i += 8192)
			sum += pairwise_sum(s + i, n - i < 8192 ? n - i : 8192);
		return (float)((double)sum / (double)n);
	}
	double sum = 0;
	uint64_t seen = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (isnan(s[i]))
			continue;
		sum += s[i];
		seen++;
	}
	*unseen = n - seen;
	return seen ? sum / (double)seen : NAN; /* an infinity makes it non-finite */
}

static int plan_alloc(ibstore_plan **out, uint64_t n)
{
	ibstore_plan *p = calloc(1, sizeof *p);
	uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
	float *w = malloc((n ? n : 1) * sizeof *w);
	if (!p || !ids || !w) {
		free(p);
		free(ids);
		free(w);
		return IBSTORE_ENOMEM;
	}
	p->ids = ids;
	p->weights = w;
	*out = p;
	return 0;
}

static int check_scores(const ibstore_prune_opts *o, const float *s, uint64_t n, char *msg,
			size_t msglen)
{
	for (uint64_t i = 0; i < n; i++) {
		if (!isinf(s[i]) && !(isnan(s[i]) && o->mode == IBSTORE_MODE_COMPAT))
			continue;
		if (msg && msglen)
			snprintf(msg, msglen, "score of sample %llu is %g: %s",
				 (unsigned long long)i, (double)s[i],
				 o->mode == IBSTORE_MODE_COMPAT
					 ? "compat mode takes finite scores only"
					 : "scores must be finite, or NaN for never seen");
		return IBSTORE_EINVAL;
	}
	return 0;
}

/*
 * Fills `order` (capacity n) with the epoch's ids before the final shuffle
 * and marks the up-weighted ones in `up_ids` (a bitmap by id).  Returns the
 * plan length.  The draws follow the reference: choose the survivors among
 * the candidates, then (by the caller) shuffle keepset ++ chosen.
 */
#define UP_WEIGHTED 0x80000000u /* flag on an id in the work array */

/*
 * Fills `order` (capacity n) with the epoch's ids before the final shuffle,
 * the up-weighted ones flagged with UP_WEIGHTED; returns the plan length.
 * The draws follow the reference: choose the survivors among the
 * candidates, then (by the caller) shuffle keepset ++ chosen.
 */
static uint64_t select_ids(const ibstore_prune_opts *o, rng *r, const float *s, uint64_t n,
			   ibstore_plan_stats *st, uint32_t *order, uint32_t *cand)
{
	uint64_t nkeep = 0, ncand = 0;
	/* below the mean, strictly (ties are kept); never-seen samples never are */
	if (isnan(st->threshold)) {
		for (uint64_t i = 0; i < n; i++)
			order[i] = (uint32_t)i;
		nkeep = n;
	} else {
		/* branch-free: both slots are written, one count advances (a NaN
		 * score compares false, so it is kept) */
		double t = st->threshold;
		for (uint64_t i = 0; i < n; i++) {
			int below = (double)s[i] < t;
			cand[ncand] = (uint32_t)i;
			order[nkeep] = (uint32_t)i;
			ncand += (uint64_t)below;
			nkeep += (uint64_t)!below;
		}
	}
	if (o->policy != IBSTORE_POLICY_NONE)
		st->below_mean = ncand;
	uint64_t k = (uint64_t)(keep_fraction(o) * (double)ncand);
	if (!st->prunes) {
		for (uint64_t i = 0; i < n; i++)
			order[i] = (uint32_t)i;
		return n;
	}
	if (o->policy == IBSTORE_POLICY_INFOBATCH) {
		/* order's tail (ncand free entries) is the scratch space */
		choose(r, cand, ncand, k, order + nkeep);
		for (uint64_t i = 0; i < k; i++)
			order[nkeep + i] = cand[i] | UP_WEIGHTED;
		return nkeep + k;
	}
	/* random: prune as many as infobatch would, chosen from all samples;
	 * every survivor is up-weighted */
	uint64_t len = n - (ncand - k);
	for (uint64_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	choose(r, order, n, len, cand);
	for (uint64_t i = 0; i < len; i++)
		order[i] |= UP_WEIGHTED;
	return len;
}

IB_API int ibstore_plan_compute(const ibstore_prune_opts *o, uint32_t epoch, const float *s,
				uint64_t n, ibstore_plan **out, char *msg, size_t msglen)
{
	if (!out)
		return bad(msg, msglen, "no output pointer");
	*out = NULL;
	int rc = ibstore_prune_opts_check(o, msg, msglen);
	if (rc)
		return rc;
	ibstore_prune_opts mine; /* the caller's options in this library's layout */
	ib_prune_opts_adopt(&mine, o, NULL, 0);
	o = &mine;
	if (n && !s)
		return bad(msg, msglen, "no scores");
	if (n >= UP_WEIGHTED)
		return bad(msg, msglen, "more than 2^31 - 1 samples");
	ibstore_plan_stats st = {.samples = n, .prunes = ibstore_prune_epoch_prunes(o, epoch)};
	st.threshold = o->policy == IBSTORE_POLICY_NONE ? NAN : threshold(o, s, n, &st.unseen);
	/* the mean's pass finds infinities (and, in compat, NaN) for free; only
	 * when it is not finite is every score checked, to name the culprit */
	if ((o->policy == IBSTORE_POLICY_NONE || !isfinite(st.threshold)) &&
	    (rc = check_scores(o, s, n, msg, msglen)))
		return rc;
	size_t cap = n ? (size_t)n : 1;
	uint32_t *order = malloc(cap * sizeof *order);
	uint32_t *cand = malloc(cap * sizeof *cand);
	ibstore_plan *p = NULL;
	if (!order || !cand || plan_alloc(&p, n)) {
		rc = bad(msg, msglen, "out of memory");
		rc = IBSTORE_ENOMEM;
		goto out;
	}
	rng r;
	rng_init(&r, o->mode == IBSTORE_MODE_COMPAT, o->seed, epoch, 1);
	uint64_t len = select_ids(o, &r, s, n, &st, order, cand);
	shuffle(&r, order, len, cand); /* the same stream continues, as in the reference */
	float up = 1.0f;
	if (st.prunes && o->policy == IBSTORE_POLICY_INFOBATCH)
		up = (float)(1.0 / keep_fraction(o));
	else if (st.prunes && len)
		up = (float)((double)n / (double)len);
	uint64_t *ids = (uint64_t *)p->ids;
	float *wt = (float *)p->weights;
	uint64_t nup = 0;
	for (uint64_t i = 0; i < len; i++) {
		uint32_t v = order[i];
		ids[i] = v & ~UP_WEIGHTED;
		wt[i] = v & UP_WEIGHTED ? up : 1.0f;
		nup += v >> 31;
	}
	st.kept = len;
	st.pruned = n - len;
	st.weight_sum = (double)(len - nup) + (double)nup * (double)up; /* exact */
	p->len = len;
	p->stats = st;
	*out = p;
	p = NULL;
out:
	ibstore_plan_free(p);
	free(order);
	free(cand);
	return rc;
}

IB_API uint64_t ibstore_plan_slice_len(const ibstore_plan *p, uint32_t world,
				       ibstore_slice_mode mode)
{
	return p ? ib_slice_len(p->len, world, mode) : 0;
}

IB_API int ibstore_plan_slice_entry(const ibstore_plan *p, uint32_t rank, uint32_t world,
				    ibstore_slice_mode mode, uint64_t i, uint64_t *id,
				    float *weight)
{
	if (!id || !weight)
		return IBSTORE_EINVAL;
	return ib_slice_entry(p, rank, world, mode, i, id, weight);
}

IB_API int ibstore_is_padding(float weight)
{
	return weight == IBSTORE_PADDING_WEIGHT;
}

IB_API void ibstore_plan_free(ibstore_plan *p)
{
	if (!p)
		return;
	free((void *)p->ids);
	free((void *)p->weights);
	free(p);
}

void ib_shuffle_u64(uint64_t seed, uint32_t epoch, uint32_t stream, uint64_t *a, uint64_t n)
{
	rng r;
	rng_init(&r, 0, seed, epoch, stream);
	for (uint64_t i = n; i-- > 1;) {
		uint64_t j = rng_upto(&r, i);
		uint64_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}
