/*
 * loader_readplan.c — from a window's index entries to its reads: which
 * batches a window holds, the window's records sorted into file order,
 * neighbours coalesced across small gaps into reads (aligned for
 * O_DIRECT), and what those reads cost: bytes read around the records,
 * pruned records read through.  Pure given the index entries: no threads,
 * no loader handle.
 */
#include <stdlib.h>

#include "internal.h"
#include "loader_int.h"

int ib_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return IBSTORE_ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

uint64_t ib_window_end(const uint64_t *need, uint64_t nbatches, uint64_t wcap, uint64_t b0)
{
	uint64_t bytes = 0, b1 = b0;
	while (b1 < nbatches) {
		if (b1 > b0 && bytes + need[b1] > wcap)
			break;
		bytes += need[b1];
		b1++;
	}
	return b1;
}

void ib_batch_needs(const ib_entries *ix, const uint64_t *order, uint64_t len,
		    uint32_t batch_size, uint64_t nbatches, uint64_t *need)
{
	for (uint64_t b = 0; b < nbatches; b++) {
		uint64_t lo = b * batch_size, hi = (b + 1) * batch_size;
		need[b] = 0;
		for (uint64_t i = lo; i < (hi < len ? hi : len); i++) {
			ib_index_entry e;
			ix->entry(ix->src, order[i], &e);
			need[b] += e.size;
		}
	}
}

static int planned(const uint8_t *in_plan, uint64_t id)
{
	return (in_plan[id >> 3] >> (id & 7)) & 1;
}

uint64_t ib_pruned_prefix(const ib_entries *ix, const uint64_t *plan_ids, uint64_t plan_len,
			  uint8_t *in_plan, uint64_t *pruned_upto)
{
	for (uint64_t i = 0; i < plan_len; i++)
		in_plan[plan_ids[i] >> 3] |= (uint8_t)(1u << (plan_ids[i] & 7));
	uint64_t sum = 0;
	for (uint64_t id = 0; id < ix->samples; id++) {
		pruned_upto[id] = sum;
		if (planned(in_plan, id))
			continue;
		ib_index_entry e;
		ix->entry(ix->src, id, &e);
		sum += rec_len(&e);
	}
	pruned_upto[ix->samples] = sum;
	return sum;
}

/* Bytes of pruned records inside [a, b) of a shard, for a request whose
 * wanted records run from lo_id to hi_id: whole records between them
 * (gaps read through) from the prefix sums, plus the parts of neighbours
 * that alignment reaches. */
static uint64_t pruned_inside(const ib_readplan *p, uint32_t shard, uint64_t a, uint64_t b,
			      uint64_t lo_id, uint64_t hi_id)
{
	uint64_t sum = p->pruned_upto[hi_id] - p->pruned_upto[lo_id];
	for (uint64_t id = lo_id; id-- > 0;) {
		ib_index_entry e;
		p->ix.entry(p->ix.src, id, &e);
		if (e.shard != shard || e.offset + rec_len(&e) <= a)
			break;
		if (!planned(p->in_plan, id))
			sum += e.offset + rec_len(&e) - (e.offset > a ? e.offset : a);
	}
	for (uint64_t id = hi_id + 1; id < p->ix.samples; id++) {
		ib_index_entry e;
		p->ix.entry(p->ix.src, id, &e);
		if (e.shard != shard || e.offset >= b)
			break;
		if (!planned(p->in_plan, id))
			sum += (e.offset + rec_len(&e) < b ? e.offset + rec_len(&e) : b) - e.offset;
	}
	return sum;
}

int ib_plan_reads(const ib_readplan *p, window *w, uint32_t windex, ib_read_acct *acct)
{
	if (ib_sort_recs(w->recs, w->nrecs))
		return IBSTORE_ENOMEM;
	uint64_t read = 0, wanted = 0, pruned_req = 0;
	for (size_t i = 0; i < w->nrecs;) {
		const ib_index_entry e = w->recs[i].e;
		uint64_t start = e.offset, end = e.offset + rec_len(&e);
		uint64_t prev_id = w->recs[i].id;
		wanted += rec_len(&e);
		size_t j = i + 1;
		for (; j < w->nrecs; j++) {
			const ib_index_entry f = w->recs[j].e;
			if (w->recs[j].id == prev_id)
				continue; /* the same record twice (padding): read once */
			uint64_t fend = f.offset + rec_len(&f);
			if (f.shard != e.shard || p->gap == 0 || f.offset - end > p->gap ||
			    fend - start > p->max_read)
				break;
			end = fend;
			wanted += rec_len(&f);
			prev_id = w->recs[j].id;
		}
		uint64_t a = p->direct ? start & ~(uint64_t)(DIRECT_ALIGN - 1) : start;
		uint64_t z = p->direct ? (end + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1)
				       : end;
		if (ib_grow((void **)&w->reqs, &w->capreqs, w->nreqs + 1, sizeof *w->reqs))
			return IBSTORE_ENOMEM;
		w->reqs[w->nreqs++] = (ib_req){.shard = e.shard,
					       .fd = e.shard + (p->direct ? p->shards : 0),
					       .len = (uint32_t)(z - a),
					       .off = a, .need = (uint32_t)(end - a),
					       .window = windex,
					       .first_rec = (uint32_t)i, .nrecs = (uint32_t)(j - i),
					       .buf_index = -1};
		for (size_t k = i; k < j; k++)
			w->recs[k].rel = (uint32_t)(w->recs[k].e.offset - a);
		pruned_req += pruned_inside(p, e.shard, a, z, w->recs[i].id, w->recs[j - 1].id);
		read += z - a;
		i = j;
	}
	acct->read += read;
	acct->wanted += wanted;
	acct->pruned += pruned_req;
	return 0;
}
