/*
 * loader_hooks.h — test-only controls of the loader; not public API (the
 * symbols are hidden in the shared library, and tests link the static one).
 *
 * The I/O thread drops the loader's lock while it plans a window, submits
 * reads and reaps them.  A lost wake-up hides in exactly those windows:
 * close() or epoch_begin() waiting for the thread to go idle while the
 * thread changes state without telling it.  These delays widen each window
 * so a test can land close() / epoch_begin() inside it every time.
 */
#ifndef IBSTORE_LOADER_HOOKS_H
#define IBSTORE_LOADER_HOOKS_H

#include "ibstore.h"

typedef struct ib_loader_delays {
	unsigned plan_us;   /* after planning a window, before taking the lock */
	unsigned submit_us; /* after submitting reads, before taking the lock */
	unsigned reap_us;   /* after reaping completions, before taking the lock */
} ib_loader_delays;

/* Sets the delays; call before the first epoch_begin (the I/O thread reads
 * them after epoch_begin wakes it). */
void ib_loader_set_delays(ibstore_loader *l, const ib_loader_delays *d);

#endif
