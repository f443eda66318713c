/*
 * abi.c — the versioned public structs (ibstore.h, Conventions): their
 * *_init_sized() calls, the check of a caller's `size`, and the copies
 * between the caller's layout and this library's.  A struct only grows at
 * its end, so a caller's struct of `size` bytes is this library's layout cut
 * (older caller) or extended (newer caller) at the end; ibstore_run_opts is
 * two such structs, its prune member and its own fields after it.
 */
#include <string.h>

#include "abi.h"
#include "internal.h"

/* No version of any of these structs is, or will be, this large: a size
 * above it is garbage (a struct never initialised). */
#define SIZE_MAX_SANE 4096

typedef struct layout {
	const char *name;
	size_t first; /* offset of the first field after `size` */
	size_t known; /* end of the last field this library knows */
} layout;

#define END(T, f) (offsetof(T, f) + sizeof(((T *)0)->f))
#define LAYOUT(T, first, last) {#T, offsetof(T, first), END(T, last)}

static const layout WRITER = LAYOUT(ibstore_writer_opts, shard_size, jobs);
static const layout PRUNE = LAYOUT(ibstore_prune_opts, policy, ema);
static const layout RUN = LAYOUT(ibstore_run_opts, prune, checkpoint_every);
static const layout LOADER = LAYOUT(ibstore_loader_opts, batch_size, images);
static const layout IMAGE = LAYOUT(ibstore_image_opts, width, pad);
static const layout INFO = LAYOUT(ibstore_info, format_version, keys);
static const layout RUN_INFO = LAYOUT(ibstore_run_info, epoch, generation);
static const layout LOADER_STATS = LAYOUT(ibstore_loader_stats, epoch, registered);

/* Where ibstore_run_opts' own fields begin, after its prune member. */
#define RUN_TAIL offsetof(ibstore_run_opts, samples)

static int check_size(const layout *L, size_t size, char *msg, size_t cap)
{
	if (size == 0)
		return ib_failn(msg, cap, IBSTORE_EINVAL,
				"%s.size is 0: fill the struct with its *_init() first "
				"(or pass its sizeof to the *_sized() call)", L->name);
	if (size <= L->first || size % 4 || size > SIZE_MAX_SANE)
		return ib_failn(msg, cap, IBSTORE_EINVAL,
				"%s.size %zu is not the size of any version of the struct "
				"(this library knows %zu bytes): not filled by its *_init()?",
				L->name, size, L->known);
	return 0;
}

/* n bytes of the caller's layout into this library's (known bytes): the
 * common prefix, after checking that the caller set nothing beyond it. */
static int copy_in(void *dst, size_t known, const void *src, size_t n, const char *name,
		   char *msg, size_t cap)
{
	const unsigned char *s = src;
	for (size_t i = known; i < n; i++)
		if (s[i])
			return ib_failn(msg, cap, IBSTORE_EINVAL,
					"%s: byte %zu of the caller's %zu is set, but this library "
					"(ibstore %s) knows the first %zu only: an option it does "
					"not have", name, i, n, IBSTORE_VERSION_STRING, known);
	memcpy(dst, src, n < known ? n : known);
	return 0;
}

/* This library's known bytes into the caller's n: zeros past the prefix. */
static void copy_out(void *dst, size_t n, const void *src, size_t known)
{
	size_t k = n < known ? n : known;
	memcpy(dst, src, k);
	memset((unsigned char *)dst + k, 0, n - k);
}

static void set_size(void *s, size_t size)
{
	uint32_t v = (uint32_t)size;
	memcpy(s, &v, sizeof v);
}

static int adopt(void *dst, size_t dst_size, const layout *L, const void *src, char *msg,
		 size_t cap)
{
	if (!src)
		return 0;
	uint32_t size;
	memcpy(&size, src, sizeof size);
	int rc = check_size(L, size, msg, cap);
	if (!rc)
		rc = copy_in(dst, L->known, src, size, L->name, msg, cap);
	set_size(dst, dst_size);
	return rc;
}

static int emit(void *dst, size_t size, const layout *L, const void *src, char *msg, size_t cap)
{
	int rc = check_size(L, size, msg, cap);
	if (rc)
		return rc;
	copy_out(dst, size, src, L->known);
	set_size(dst, size);
	return 0;
}

int ib_writer_opts_adopt(ibstore_writer_opts *dst, const ibstore_writer_opts *src, char *msg,
			 size_t cap)
{
	ib_writer_opts_defaults(dst);
	return adopt(dst, sizeof *dst, &WRITER, src, msg, cap);
}

int ib_prune_opts_adopt(ibstore_prune_opts *dst, const ibstore_prune_opts *src, char *msg,
			size_t cap)
{
	ib_prune_opts_defaults(dst);
	return adopt(dst, sizeof *dst, &PRUNE, src, msg, cap);
}

int ib_loader_opts_adopt(ibstore_loader_opts *dst, const ibstore_loader_opts *src, char *msg,
			 size_t cap)
{
	ib_loader_opts_defaults(dst);
	return adopt(dst, sizeof *dst, &LOADER, src, msg, cap);
}

int ib_image_opts_adopt(ibstore_image_opts *dst, const ibstore_image_opts *src, char *msg,
			size_t cap)
{
	ib_image_opts_defaults(dst);
	return adopt(dst, sizeof *dst, &IMAGE, src, msg, cap);
}

/* The caller's run options of `size` bytes hold a prune member of
 * prune_size bytes at the usual offset and the run's own fields after it. */
static int check_run_sizes(size_t size, size_t prune_size, char *msg, size_t cap)
{
	int rc = check_size(&RUN, size, msg, cap);
	if (!rc)
		rc = check_size(&PRUNE, prune_size, msg, cap);
	if (!rc && prune_size > size - offsetof(ibstore_run_opts, prune))
		rc = ib_failn(msg, cap, IBSTORE_EINVAL,
			      "ibstore_run_opts.size %zu cannot hold its prune member of %zu bytes: "
			      "not filled by ibstore_run_opts_init()?", size, prune_size);
	return rc;
}

int ib_run_opts_adopt(ibstore_run_opts *dst, const ibstore_run_opts *src, char *msg, size_t cap)
{
	ib_run_opts_defaults(dst);
	if (!src)
		return 0;
	const unsigned char *s = (const void *)src;
	size_t poff = offsetof(ibstore_run_opts, prune);
	uint32_t size = src->size;
	int rc = check_size(&RUN, size, msg, cap);
	if (rc)
		return rc; /* src->prune.size may lie outside the caller's struct */
	uint32_t psize = src->prune.size;
	if ((rc = check_run_sizes(size, psize, msg, cap)))
		return rc;
	rc = copy_in(&dst->prune, PRUNE.known, s + poff, psize, PRUNE.name, msg, cap);
	dst->prune.size = sizeof dst->prune;
	if (rc)
		return rc;
	return copy_in((unsigned char *)dst + RUN_TAIL, RUN.known - RUN_TAIL, s + poff + psize,
		       size - poff - psize, RUN.name, msg, cap);
}

int ib_run_opts_emit(ibstore_run_opts *dst, size_t size, size_t prune_size,
		     const ibstore_run_opts *src, char *msg, size_t cap)
{
	int rc = check_run_sizes(size, prune_size, msg, cap);
	if (rc)
		return rc;
	unsigned char *d = (void *)dst;
	size_t poff = offsetof(ibstore_run_opts, prune);
	memset(d, 0, poff);
	set_size(d, size);
	copy_out(d + poff, prune_size, &src->prune, PRUNE.known);
	set_size(d + poff, prune_size);
	copy_out(d + poff + prune_size, size - poff - prune_size,
		 (const unsigned char *)src + RUN_TAIL, RUN.known - RUN_TAIL);
	return 0;
}

int ib_info_emit(ibstore_info *dst, size_t size, const ibstore_info *src, char *msg, size_t cap)
{
	return emit(dst, size, &INFO, src, msg, cap);
}

int ib_loader_stats_emit(ibstore_loader_stats *dst, size_t size, const ibstore_loader_stats *src,
			 char *msg, size_t cap)
{
	return emit(dst, size, &LOADER_STATS, src, msg, cap);
}

int ib_run_info_emit(ibstore_run_info *dst, size_t size, const ibstore_run_info *src, char *msg,
		     size_t cap)
{
	return emit(dst, size, &RUN_INFO, src, msg, cap);
}

IB_API int ibstore_writer_opts_init_sized(ibstore_writer_opts *o, size_t size)
{
	ibstore_writer_opts d;
	ib_writer_opts_defaults(&d);
	return o ? emit(o, size, &WRITER, &d, NULL, 0) : IBSTORE_EINVAL;
}

IB_API int ibstore_prune_opts_init_sized(ibstore_prune_opts *o, size_t size)
{
	ibstore_prune_opts d;
	ib_prune_opts_defaults(&d);
	return o ? emit(o, size, &PRUNE, &d, NULL, 0) : IBSTORE_EINVAL;
}

IB_API int ibstore_run_opts_init_sized(ibstore_run_opts *o, size_t size, size_t prune_size)
{
	ibstore_run_opts d;
	ib_run_opts_defaults(&d);
	return o ? ib_run_opts_emit(o, size, prune_size, &d, NULL, 0) : IBSTORE_EINVAL;
}

IB_API int ibstore_loader_opts_init_sized(ibstore_loader_opts *o, size_t size)
{
	ibstore_loader_opts d;
	ib_loader_opts_defaults(&d);
	return o ? emit(o, size, &LOADER, &d, NULL, 0) : IBSTORE_EINVAL;
}

IB_API int ibstore_image_opts_init_sized(ibstore_image_opts *o, size_t size)
{
	ibstore_image_opts d;
	ib_image_opts_defaults(&d);
	return o ? emit(o, size, &IMAGE, &d, NULL, 0) : IBSTORE_EINVAL;
}

IB_API size_t ibstore_struct_size(ibstore_struct which)
{
	switch (which) {
	case IBSTORE_STRUCT_INFO: return sizeof(ibstore_info);
	case IBSTORE_STRUCT_WRITER_OPTS: return sizeof(ibstore_writer_opts);
	case IBSTORE_STRUCT_PRUNE_OPTS: return sizeof(ibstore_prune_opts);
	case IBSTORE_STRUCT_RUN_OPTS: return sizeof(ibstore_run_opts);
	case IBSTORE_STRUCT_LOADER_OPTS: return sizeof(ibstore_loader_opts);
	case IBSTORE_STRUCT_LOCATION: return sizeof(ibstore_location);
	case IBSTORE_STRUCT_PROBLEM: return sizeof(ibstore_problem);
	case IBSTORE_STRUCT_VERIFY_STATS: return sizeof(ibstore_verify_stats);
	case IBSTORE_STRUCT_PLAN_STATS: return sizeof(ibstore_plan_stats);
	case IBSTORE_STRUCT_PLAN: return sizeof(ibstore_plan);
	case IBSTORE_STRUCT_EPOCH_INFO: return sizeof(ibstore_epoch_info);
	case IBSTORE_STRUCT_EPOCH_IO: return sizeof(ibstore_epoch_io);
	case IBSTORE_STRUCT_EPOCH_STATS: return sizeof(ibstore_epoch_stats);
	case IBSTORE_STRUCT_RUN_INFO: return sizeof(ibstore_run_info);
	case IBSTORE_STRUCT_BATCH: return sizeof(ibstore_batch);
	case IBSTORE_STRUCT_LOADER_STATS: return sizeof(ibstore_loader_stats);
	case IBSTORE_STRUCT_IMAGE_OPTS: return sizeof(ibstore_image_opts);
	}
	return 0;
}
