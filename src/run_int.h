/*
 * run_int.h — what the run gives the rest of the library (the loader)
 * beyond the public API.  Not public.
 */
#ifndef IBSTORE_RUN_INT_H
#define IBSTORE_RUN_INT_H

#include <stdint.h>

#include "ibstore.h"

/*
 * This rank's slice of the current epoch's plan, as the run built it at
 * epoch_begin (slice.h has the rule): *len entries at *ids and *weights,
 * padding marked with IBSTORE_PADDING_WEIGHT.  The arrays stay valid until
 * the next epoch_begin or close.  IBSTORE_EINVAL for a run not open,
 * IBSTORE_ESTATE when no epoch has begun.
 */
int ib_run_slice(const ibstore_run *r, const uint64_t **ids, const float **weights,
		 uint64_t *len);

#endif
