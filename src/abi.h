/*
 * abi.h — the size rule of the versioned public structs (ibstore.h,
 * Conventions): every entry point that takes or fills one of them goes
 * through these calls, so a caller compiled against an older (smaller) or
 * newer (larger) layout is read and written in its own layout.
 */
#ifndef IBSTORE_ABI_H
#define IBSTORE_ABI_H

#include <stddef.h>

#include "ibstore.h"

/* Input: fills *dst (this library's layout) with the defaults, then with
 * the fields the caller's `src` has (src->size bytes of them).  A NULL src
 * leaves the defaults.  IBSTORE_EINVAL with a message in msg (cap bytes)
 * for a size no version had or a non-zero field this library does not
 * know.  dst->size is this library's sizeof. */
int ib_writer_opts_adopt(ibstore_writer_opts *dst, const ibstore_writer_opts *src, char *msg,
			 size_t cap);
int ib_prune_opts_adopt(ibstore_prune_opts *dst, const ibstore_prune_opts *src, char *msg,
			size_t cap);
int ib_run_opts_adopt(ibstore_run_opts *dst, const ibstore_run_opts *src, char *msg, size_t cap);
int ib_loader_opts_adopt(ibstore_loader_opts *dst, const ibstore_loader_opts *src, char *msg,
			 size_t cap);
int ib_image_opts_adopt(ibstore_image_opts *dst, const ibstore_image_opts *src, char *msg,
			size_t cap);

/* Output: writes `src` (this library's layout) into the caller's `dst` of
 * `size` bytes (for run options, `prune_size` for its prune member): the
 * fields both know, zeros for the fields only the caller knows, and the
 * caller's sizes.  IBSTORE_EINVAL with a message for a size no version
 * had (nothing written). */
int ib_info_emit(ibstore_info *dst, size_t size, const ibstore_info *src, char *msg, size_t cap);
int ib_loader_stats_emit(ibstore_loader_stats *dst, size_t size, const ibstore_loader_stats *src,
			 char *msg, size_t cap);
int ib_run_info_emit(ibstore_run_info *dst, size_t size, const ibstore_run_info *src, char *msg,
		     size_t cap);
int ib_run_opts_emit(ibstore_run_opts *dst, size_t size, size_t prune_size,
		     const ibstore_run_opts *src, char *msg, size_t cap);

/* The defaults of each options struct (this library's layout, size set),
 * kept beside the code that uses them: writer.c, prune.c, state.c,
 * loader.c, image.c. */
void ib_writer_opts_defaults(ibstore_writer_opts *o);
void ib_prune_opts_defaults(ibstore_prune_opts *o);
void ib_run_opts_defaults(ibstore_run_opts *o);
void ib_loader_opts_defaults(ibstore_loader_opts *o);
void ib_image_opts_defaults(ibstore_image_opts *o);

#endif
