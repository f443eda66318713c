/*
 * names.c — the names of the public enums: one table per enum, read by its
 * *_parse (name to value) and its *_name (value to name), so the library,
 * the CLI and the Python binding spell every choice the same way.
 */
#include <string.h>
#include <strings.h>

#include "internal.h"

typedef struct name_entry {
	const char *name;
	int value;
} name_entry;

#define COUNT(t) (sizeof(t) / sizeof((t)[0]))

/* What a *_name call returns for a value outside its enum. */
#define UNKNOWN_NAME "unknown"

/* Looks `name` up in table t of n entries (`icase`: ignoring case). */
static int lookup(const name_entry *t, size_t n, int icase, const char *name, int *out)
{
	if (!name)
		return IBSTORE_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if ((icase ? strcasecmp(name, t[i].name) : strcmp(name, t[i].name)) == 0) {
			*out = t[i].value;
			return 0;
		}
	}
	return IBSTORE_EINVAL;
}

static const char *name_of(const name_entry *t, size_t n, int value)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].value == value)
			return t[i].name;
	return UNKNOWN_NAME;
}

/* ---- stored codecs --------------------------------------------------- */

static const name_entry codecs[] = {
	{"none", IBSTORE_CODEC_NONE},
	{"lz4", IBSTORE_CODEC_LZ4},
};

IB_API const char *ibstore_codec_name(int codec)
{
	return name_of(codecs, COUNT(codecs), codec);
}

/* ---- compression when writing (names case-insensitive) -------------- */

static const name_entry compresses[] = {
	{"none", IBSTORE_COMPRESS_NONE},
	{"lz4", IBSTORE_COMPRESS_LZ4},
	{"lz4hc", IBSTORE_COMPRESS_LZ4HC},
	{"auto", IBSTORE_COMPRESS_AUTO},
};

IB_API int ibstore_compress_parse(const char *name, ibstore_compress *out)
{
	int v;
	if (!out || lookup(compresses, COUNT(compresses), 1, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_compress)v;
	return 0;
}

IB_API const char *ibstore_compress_name(ibstore_compress c)
{
	return name_of(compresses, COUNT(compresses), (int)c);
}

/* ---- pruning policy and mode (case-insensitive) ---------------------- */

static const name_entry policies[] = {
	{"infobatch", IBSTORE_POLICY_INFOBATCH},
	{"random", IBSTORE_POLICY_RANDOM},
	{"none", IBSTORE_POLICY_NONE},
};

IB_API int ibstore_policy_parse(const char *name, ibstore_policy *out)
{
	int v;
	if (!out || lookup(policies, COUNT(policies), 1, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_policy)v;
	return 0;
}

IB_API const char *ibstore_policy_name(ibstore_policy p)
{
	return name_of(policies, COUNT(policies), (int)p);
}

static const name_entry modes[] = {
	{"native", IBSTORE_MODE_NATIVE},
	{"compat", IBSTORE_MODE_COMPAT},
};

IB_API int ibstore_mode_parse(const char *name, ibstore_mode *out)
{
	int v;
	if (!out || lookup(modes, COUNT(modes), 1, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_mode)v;
	return 0;
}

IB_API const char *ibstore_mode_name(ibstore_mode m)
{
	return name_of(modes, COUNT(modes), (int)m);
}

/* ---- slice mode (case-insensitive) ----------------------------------- */

static const name_entry slices[] = {
	{"pad", IBSTORE_SLICE_PAD},
	{"drop", IBSTORE_SLICE_DROP},
};

IB_API int ibstore_slice_parse(const char *name, ibstore_slice_mode *out)
{
	int v;
	if (!out || lookup(slices, COUNT(slices), 1, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_slice_mode)v;
	return 0;
}

IB_API const char *ibstore_slice_name(ibstore_slice_mode m)
{
	return name_of(slices, COUNT(slices), (int)m);
}

/* ---- loader choices (names exact, as the loader always took them) ---- */

static const name_entry backends[] = {
	{"auto", IBSTORE_BACKEND_AUTO},
	{"uring", IBSTORE_BACKEND_URING},
	{"pread", IBSTORE_BACKEND_PREAD},
	{"mmap", IBSTORE_BACKEND_MMAP},
};

IB_API int ibstore_backend_parse(const char *name, ibstore_backend *out)
{
	int v;
	if (!out || lookup(backends, COUNT(backends), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_backend)v;
	return 0;
}

IB_API const char *ibstore_backend_name(ibstore_backend b)
{
	return name_of(backends, COUNT(backends), (int)b);
}

static const name_entry orders[] = {
	{"random", IBSTORE_ORDER_RANDOM},
	{"locality", IBSTORE_ORDER_LOCALITY},
};

IB_API int ibstore_order_parse(const char *name, ibstore_order *out)
{
	int v;
	if (!out || lookup(orders, COUNT(orders), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_order)v;
	return 0;
}

IB_API const char *ibstore_order_name(ibstore_order o)
{
	return name_of(orders, COUNT(orders), (int)o);
}

static const name_entry corrupts[] = {
	{"fail", IBSTORE_CORRUPT_FAIL},
	{"skip", IBSTORE_CORRUPT_SKIP},
};

IB_API int ibstore_corrupt_parse(const char *name, ibstore_corrupt_policy *out)
{
	int v;
	if (!out || lookup(corrupts, COUNT(corrupts), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_corrupt_policy)v;
	return 0;
}

IB_API const char *ibstore_corrupt_name(ibstore_corrupt_policy c)
{
	return name_of(corrupts, COUNT(corrupts), (int)c);
}

/* ---- the image stage (names exact) ------------------------------------ */

static const name_entry layouts[] = {
	{"hwc", IBSTORE_LAYOUT_HWC},
	{"chw", IBSTORE_LAYOUT_CHW},
};

IB_API int ibstore_layout_parse(const char *name, ibstore_layout *out)
{
	int v;
	if (!out || lookup(layouts, COUNT(layouts), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_layout)v;
	return 0;
}

IB_API const char *ibstore_layout_name(ibstore_layout layout)
{
	return name_of(layouts, COUNT(layouts), (int)layout);
}

static const name_entry dtypes[] = {
	{"uint8", IBSTORE_DTYPE_UINT8},
	{"float32", IBSTORE_DTYPE_FLOAT32},
};

IB_API int ibstore_dtype_parse(const char *name, ibstore_dtype *out)
{
	int v;
	if (!out || lookup(dtypes, COUNT(dtypes), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_dtype)v;
	return 0;
}

IB_API const char *ibstore_dtype_name(ibstore_dtype dtype)
{
	return name_of(dtypes, COUNT(dtypes), (int)dtype);
}

static const name_entry image_modes[] = {
	{"eval", IBSTORE_IMAGES_EVAL},
	{"train", IBSTORE_IMAGES_TRAIN},
};

IB_API int ibstore_images_mode_parse(const char *name, ibstore_images_mode *out)
{
	int v;
	if (!out || lookup(image_modes, COUNT(image_modes), 0, name, &v))
		return IBSTORE_EINVAL;
	*out = (ibstore_images_mode)v;
	return 0;
}

IB_API const char *ibstore_images_mode_name(ibstore_images_mode mode)
{
	return name_of(image_modes, COUNT(image_modes), (int)mode);
}
