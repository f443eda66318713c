/*
 * image_api.c — the image stage's public calls outside a loader
 * (ibstore_image_sample, ibstore_image_write_png): one sample at a time,
 * for tools such as `ibstore get --decode`.  image.c does the work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "image.h"
#include "internal.h"

#define FULL_MAX_PIXELS ((uint64_t)8192 * 8192)

IB_API int ibstore_image_sample(const void *src, size_t n, const ibstore_image_opts *opts,
				uint64_t seed, uint32_t epoch, uint64_t id, void **out,
				size_t *out_size, uint32_t *width, uint32_t *height, char *msg,
				size_t msglen)
{
	char err[IB_ERRMSG_LEN] = "";
	int rc = 0;
	ib_image *im = NULL;
	if (!src || !out || !out_size || !width || !height) {
		rc = ib_fail(err, IBSTORE_EINVAL, "NULL argument");
		goto out;
	}
	*out = NULL;
	if (!(im = ib_image_new())) {
		rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	if (!opts) { /* full size, as decoded */
		uint8_t *rgb = NULL;
		rc = ib_image_decode_rgb(im, src, n, FULL_MAX_PIXELS, &rgb, width, height, err,
					 sizeof err);
		if (!rc) {
			*out = rgb;
			*out_size = (size_t)*width * *height * 3;
		}
		goto out;
	}
	ibstore_image_opts o;
	if ((rc = ib_image_opts_adopt(&o, opts, err, sizeof err)) ||
	    (rc = ib_image_opts_check(&o, err, sizeof err)))
		goto out;
	size_t size = ib_image_sample_size(&o);
	void *buf = malloc(size);
	if (!buf) {
		rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	rc = ib_image_sample(im, &o, src, n, o.seed ? o.seed : seed, epoch, id, buf, err,
			     sizeof err);
	if (rc) {
		free(buf);
		goto out;
	}
	*out = buf;
	*out_size = size;
	*width = o.width;
	*height = o.height;
out:
	ib_image_free(im);
	if (rc)
		ib_failn(msg, msglen, 0, "%s", err);
	return rc;
}

IB_API int ibstore_image_write_png(const char *path, const void *rgb, uint32_t width,
				   uint32_t height, char *msg, size_t msglen)
{
	char err[IB_ERRMSG_LEN] = "";
	int rc = 0;
	if (!path || !*path || !rgb || !width || !height) {
		rc = ib_fail(err, IBSTORE_EINVAL, "no path, no pixels or an empty image");
		goto out;
	}
	size_t cap = strlen(path) + 8;
	char *tmp = malloc(cap);
	if (!tmp) {
		rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(tmp, cap, "%s.tmp", path);
	rc = ib_image_write_png(tmp, rgb, width, height, err, sizeof err);
	if (!rc && rename(tmp, path))
		rc = ib_fail(err, IBSTORE_EIO, "rename %s to %s failed", tmp, path);
	if (rc)
		unlink(tmp);
	free(tmp);
out:
	if (rc)
		ib_failn(msg, msglen, 0, "%s", err);
	return rc;
}
