/*
 * abi_old_caller.h — what tests/abi_old.c (a caller compiled against
 * tests/abi_old.h, the header before the newest field of each versioned
 * struct) offers test_abi.c.  Plain types only: the two translation units
 * see different layouts of the ibstore structs.
 *
 * The old caller keeps each struct in a buffer followed by POISON bytes, so
 * a library that read or wrote past the caller's size would be seen.
 */
#ifndef ABI_OLD_CALLER_H
#define ABI_OLD_CALLER_H

#include <stddef.h>
#include <stdint.h>

#define ABI_POISON 0xA5
#define ABI_POISON_LEN 64
#define ABI_BUF 512 /* holds any old struct and its poison */

/* Fills an old struct with its *_init() and sets every field it has to a
 * value other than the default (see abi_old.c), copies it and the poison
 * after it into buf, and returns its sizeof; 0 when *_init() wrote past it. */
size_t old_writer_opts(void *buf);
size_t old_prune_opts(void *buf);
size_t old_run_opts(void *buf);
size_t old_loader_opts(void *buf);

/* End to end through the public calls, old layouts in poisoned buffers;
 * each returns an ibstore result code (-100 when poison was overwritten)
 * and leaves a message in err (256 bytes). */
int old_pack(const char *path, uint32_t n, char *err);
int old_info(const char *path, uint64_t *samples, uint32_t *labels, uint64_t *max_size,
	     uint32_t *size, char *err);
int old_run_create(const char *path, uint64_t samples, char *err);
int old_run_config(const char *path, double *ratio, uint32_t *batch_size, uint64_t *samples,
		   char *err);
/* Begins epoch 0 of the run, marks two batches done and checkpoints, then
 * reads ibstore_run_info in the old layout (without batches) into out[0..5]:
 * size, epoch, in_epoch, cursor, epochs_done, committed. */
int old_run_info(const char *path, uint64_t out[6], char *err);
/* ... and after the epoch reads ibstore_loader_stats in the old layout
 * (without registered) into stats[0..2]: size, batches, samples. */
int old_load_epoch(const char *ds_path, const char *run_path, uint64_t *batches,
		   uint64_t *reads, uint64_t *reads_with_ctx, uint64_t stats[3], char *err);
int old_plan(uint64_t n, char *err);

#endif
