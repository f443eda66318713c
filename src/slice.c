/*
 * slice.c — rank slices, padding and batch counts (slice.h has the rule).
 * Hidden: compiled into libibstore and, for the exchange's padding rule,
 * into libibstore_mpi.
 */
#include "slice.h"

uint64_t ib_slice_len(uint64_t plan_len, uint32_t world, ibstore_slice_mode mode)
{
	if (world == 0)
		return 0;
	if (mode == IBSTORE_SLICE_DROP)
		return plan_len / world;
	return plan_len / world + (plan_len % world != 0);
}

int ib_slice_entry(const ibstore_plan *p, uint32_t rank, uint32_t world,
		   ibstore_slice_mode mode, uint64_t i, uint64_t *id, float *weight)
{
	if (!p || rank >= world || i >= ib_slice_len(p->len, world, mode))
		return IBSTORE_EINVAL;
	uint64_t pos = i * world + rank;
	if (pos < p->len) {
		*id = p->ids[pos];
		*weight = p->weights[pos];
	} else { /* padding: repeat from the plan's start, with no weight */
		*id = p->ids[(pos - p->len) % p->len];
		*weight = IBSTORE_PADDING_WEIGHT;
	}
	return 0;
}

void ib_slice_fill(const ibstore_plan *p, uint32_t rank, uint32_t world,
		   ibstore_slice_mode mode, uint64_t *ids, float *weights)
{
	uint64_t n = ib_slice_len(p->len, world, mode);
	for (uint64_t i = 0; i < n; i++)
		ib_slice_entry(p, rank, world, mode, i, &ids[i], &weights[i]);
}

int ib_slice_padding_id(const ibstore_plan *p, uint32_t rank, uint32_t world,
			ibstore_slice_mode mode, uint64_t *id)
{
	uint64_t len = p ? ib_slice_len(p->len, world, mode) : 0;
	float w = 1.0f;
	if (!len || ib_slice_entry(p, rank, world, mode, len - 1, id, &w))
		return 0;
	return ibstore_is_padding(w);
}

uint64_t ib_batch_count(uint64_t len, uint32_t batch_size, int drop_last)
{
	if (batch_size == 0)
		return 0;
	return drop_last ? len / batch_size : len / batch_size + (len % batch_size != 0);
}
