/*
 * loader_order.c — the first stage of an epoch, before any I/O: this
 * rank's slice of the run's plan, in the order batches emit it (the plan's
 * own random order, or reordered for locality).  Pure functions.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "loader_int.h"

int ib_sort_recs(wrec *r, size_t n)
{
	wrec *tmp = malloc((n ? n : 1) * sizeof *tmp);
	if (!tmp)
		return IBSTORE_ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		size_t count[65537] = {0};
		int sh = 16 * pass;
		for (size_t i = 0; i < n; i++)
			count[((r[i].id >> sh) & 0xffff) + 1]++;
		for (int i = 0; i < 65536; i++)
			count[i + 1] += count[i];
		for (size_t i = 0; i < n; i++)
			tmp[count[(r[i].id >> sh) & 0xffff]++] = r[i];
		memcpy(r, tmp, n * sizeof *r);
	}
	free(tmp);
	return 0;
}

int ib_order_locality(uint64_t seed, uint32_t epoch, uint64_t avg_record, uint64_t *ids,
		      float *w, uint64_t n)
{
	wrec *r = malloc((n ? n : 1) * sizeof *r);
	uint64_t *key = malloc((n ? n : 1) * sizeof *key);
	uint64_t *id0 = malloc((n ? n : 1) * sizeof *id0);
	float *w0 = malloc((n ? n : 1) * sizeof *w0);
	uint64_t blk = (1u << 20) / avg_record ? (1u << 20) / avg_record : 1;
	uint64_t nblk = (n + blk - 1) / blk;
	uint64_t *border = malloc((nblk ? nblk : 1) * sizeof *border);
	int rc = IBSTORE_ENOMEM;
	if (!r || !key || !id0 || !w0 || !border)
		goto out;
	for (uint64_t i = 0; i < n; i++)
		r[i] = (wrec){.id = ids[i], .pos = (uint32_t)i};
	if (ib_sort_recs(r, n))
		goto out;
	for (uint64_t b = 0; b < nblk; b++)
		border[b] = b;
	ib_shuffle_u64(seed, epoch, 7, border, nblk);
	uint64_t k = 0;
	for (uint64_t b = 0; b < nblk; b++) {
		uint64_t lo = border[b] * blk, hi = lo + blk < n ? lo + blk : n;
		for (uint64_t i = lo; i < hi; i++)
			key[k++] = r[i].pos; /* a slot of the slice, in file order */
	}
	uint64_t span = 16 * blk;
	for (uint64_t s = 0; s < n; s += span)
		ib_shuffle_u64(seed, epoch, (uint32_t)(8 + s / span), key + s,
			       s + span < n ? span : n - s);
	memcpy(id0, ids, n * sizeof *ids);
	memcpy(w0, w, n * sizeof *w);
	for (uint64_t i = 0; i < n; i++) {
		ids[i] = id0[key[i]];
		w[i] = w0[key[i]];
	}
	rc = 0;
out:
	free(r);
	free(key);
	free(id0);
	free(w0);
	free(border);
	return rc;
}
