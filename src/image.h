/*
 * image.h — the image stage: one encoded sample (JPEG, PNG or WebP, known by
 * its magic bytes) decoded and augmented into one output sample, as
 * ibstore_image_opts asks (ibstore.h).  image.c holds the codecs, the random
 * stream and the crop geometry; image_resize.c the resampler.  The loader's
 * decode threads each own an ib_image (its codec handles and scratch
 * buffers); nothing here is shared between threads.
 */
#ifndef IBSTORE_IMAGE_H
#define IBSTORE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ibstore.h"

typedef enum {
	IB_IMG_UNKNOWN = 0,
	IB_IMG_JPEG = 1, /* FF D8 FF */
	IB_IMG_PNG = 2,  /* 89 50 4E 47 0D 0A 1A 0A */
	IB_IMG_WEBP = 3, /* "RIFF" ....  "WEBP" */
} ib_img_format;

/* The format of a payload from its first bytes (IB_IMG_UNKNOWN when none). */
ib_img_format ib_image_sniff(const uint8_t *p, size_t n);
const char *ib_image_format_name(ib_img_format f);

/* A decoder of one thread: codec handles and scratch buffers, grown as
 * needed and kept.  NULL when out of memory. */
typedef struct ib_image ib_image;
ib_image *ib_image_new(void);
void ib_image_free(ib_image *im);

/* The size of the image the last successful decode of `im` produced (a
 * JPEG's at its DCT scale): for the tests and statistics. */
void ib_image_last_size(const ib_image *im, uint32_t *w, uint32_t *h);

/* The pixels of that image the last decode produced, x, y, w, h in its
 * coordinates: a JPEG sample's crop (rounded out to whole pixels, then one
 * iMCU more and to iMCU boundaries), the whole image otherwise. */
void ib_image_last_crop(const ib_image *im, uint32_t crop[4]);

/* Checks the options (sizes, ranges); 0 or IBSTORE_EINVAL with a message. */
int ib_image_opts_check(const ibstore_image_opts *o, char *err, size_t cap);

/* Bytes of one output sample: width * height * 3 * (1 or 4). */
size_t ib_image_sample_size(const ibstore_image_opts *o);

/*
 * Decodes `src` (n bytes) and writes one output sample of
 * ib_image_sample_size(o) bytes at `out`, its random choices drawn from the
 * stream of (seed, epoch, id).  Returns 0, or:
 *   IBSTORE_EUNSUPPORTED  not a JPEG, PNG or WebP payload;
 *   IBSTORE_ECORRUPT      truncated or corrupt (the codec's words in err);
 *   IBSTORE_ETOOBIG       more than o->max_pixels pixels (before decoding);
 *   IBSTORE_ENOMEM.
 * On failure `out` holds no sample (its bytes are unspecified): the caller
 * must not pass it off as one.
 */
int ib_image_sample(ib_image *im, const ibstore_image_opts *o, const uint8_t *src, size_t n,
		    uint64_t seed, uint32_t epoch, uint64_t id, void *out, char *err, size_t cap);

/*
 * Decodes `src` at full size into RGB8 (no augmentation): *rgb is malloc'd,
 * w * h * 3 bytes, row-major.  For JPEG the pixels are libjpeg-turbo's own
 * (what tjDecompress2 gives for TJPF_RGB, flags 0).  Errors as ib_image_sample.
 */
int ib_image_decode_rgb(ib_image *im, const uint8_t *src, size_t n, uint64_t max_pixels,
			uint8_t **rgb, uint32_t *w, uint32_t *h, char *err, size_t cap);

/* Writes RGB8 pixels as a PNG file (libspng): 0, or IBSTORE_EIO with a message. */
int ib_image_write_png(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h, char *err,
		       size_t cap);

/* The source region a sample is cut from (in the full-size image) and
 * whether it is flipped. */
typedef struct ib_box {
	uint32_t x, y, w, h;
	int flip;
} ib_box;

/*
 * The region of a w x h image that ib_image_sample takes for (seed, epoch,
 * id): train mode draws torchvision's RandomResizedCrop (10 attempts of
 * area in scale·w·h and log-uniform aspect ratio, else the fallback: the
 * whole image clamped to the ratio range, centred), or with pad the whole
 * image (the padded window is drawn after the resize), and the flip; eval mode
 * gives the centre crop of the image resized to resize_short.  Exposed for
 * the tests that compare its distribution with torchvision's formula.
 */
void ib_image_box(const ibstore_image_opts *o, uint32_t w, uint32_t h, uint64_t seed,
		  uint32_t epoch, uint64_t id, ib_box *out);

/* The counter-based random stream: uniform doubles in [0, 1), the k-th of
 * (seed, epoch, id) computed directly (no state carried between samples). */
double ib_image_uniform(uint64_t seed, uint32_t epoch, uint64_t id, uint32_t k);

/*
 * image_resize.c: resamples an RGB8 region (sx, sy, sw, sh) of a src image
 * (sstride bytes a row) to dw x dh RGB8 at dst (dw * 3 bytes a row),
 * area-weighted (a triangle filter widened by the scale factor, as PIL's
 * antialiased bilinear) when shrinking and bilinear when enlarging,
 * mirrored horizontally when `flip`.  `scratch` (grown as needed, may be
 * *scratch NULL; *scratch_cap counts floats) holds the weights and the
 * intermediate rows.  0 or IBSTORE_ENOMEM.
 */
int ib_image_resize(const uint8_t *src, size_t sstride, double sx, double sy, double sw,
		    double sh, uint8_t *dst, uint32_t dw, uint32_t dh, int flip, float **scratch,
		    size_t *scratch_cap);

#endif
