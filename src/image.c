/*
 * image.c — the image stage of one sample (image.h): the format from the
 * magic bytes, the codecs (JPEG through TurboJPEG at a DCT scale, PNG
 * through libspng, WebP through libwebp) decoding to RGB8, the counter-based
 * random stream, the crop geometry (torchvision's RandomResizedCrop and the
 * eval centre crop) and the output conversion (layout, dtype).  The
 * resampler is image_resize.c.
 *
 * JPEG goes through libjpeg-turbo's libjpeg API, not TurboJPEG's, for its
 * partial decoding: only the rows and columns of the crop (and one iMCU
 * around them) go through the inverse DCT, upsampling and colour
 * conversion, and the rows above and below it are only entropy-decoded.
 * The pixels of the crop are those of the full decode, byte for byte (the
 * margin gives the fancy upsampler its real neighbours), and every
 * entropy-coded byte is still decoded, so a corrupt or truncated image
 * fails whichever crop a sample draws.
 *
 * Conversions to RGB8, as PIL's Image.convert("RGB") that torchvision
 * pipelines apply: grayscale is replicated; alpha (a channel or tRNS) is
 * dropped, not composited; 16-bit PNG samples keep their high byte
 * (libspng); CMYK and YCCK JPEGs are taken in Adobe's inverted convention
 * (what Photoshop writes and libjpeg hands back as stored), r = c * k / 255
 * rounded, and likewise g from m, b from y.  No colour management (ICC
 * profiles and PNG gamma are ignored).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: the message codes, ERREXIT */
#include <spng.h>
#include <webp/decode.h>

#include "image.h"
#include "internal.h"

#define MAX_SIDE 8192u /* of the output */

/* Every JPEG decode: a warning (truncated or corrupt data that libjpeg
 * would patch over with gray) fails the call, and progressive images of
 * more scans than this are refused (a few kilobytes of them can take
 * minutes: TurboJPEG's TJFLAG_LIMITSCANS has the same bound).  Neither
 * changes a pixel of a valid image. */
#define JPEG_MAX_SCANS 500

/* libspng: the largest ancillary chunk kept and all of them together
 * (text and ICC profiles are decompressed into this cache: a bomb there
 * is refused too). */
#define PNG_CHUNK_LIMIT (16u << 20)
#define PNG_CACHE_LIMIT (32u << 20)

/* libjpeg's error manager, its way out of a failed call (error_exit
 * longjmps to `env`, set by each function that calls into libjpeg) */
typedef struct jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf env;
	int too_many_scans;
} jpeg_err;

struct ib_image {
	struct jpeg_decompress_struct jd; /* created once, reused */
	jpeg_err je;
	struct jpeg_progress_mgr jp;
	int jd_live; /* jd created */
	uint8_t *pix; /* the decoded image: RGB8 (CMYK before conversion) */
	size_t pix_cap;
	uint8_t *rgb; /* the resized sample when it is not the output itself */
	size_t rgb_cap;
	uint8_t *unpadded; /* train with pad: the resized image before the shift */
	size_t unpadded_cap;
	float *rs; /* image_resize.c's scratch, rs_cap floats */
	size_t rs_cap;
	uint32_t last_w, last_h; /* size of the last decode */
	uint32_t last_crop[4];   /* its pixels decoded: x, y, w, h */
};

/* ---- formats ------------------------------------------------------------ */

ib_img_format ib_image_sniff(const uint8_t *p, size_t n)
{
	static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
	if (!p)
		return IB_IMG_UNKNOWN;
	if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return IB_IMG_JPEG;
	if (n >= 8 && memcmp(p, png, 8) == 0)
		return IB_IMG_PNG;
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return IB_IMG_WEBP;
	return IB_IMG_UNKNOWN;
}

const char *ib_image_format_name(ib_img_format f)
{
	switch (f) {
	case IB_IMG_JPEG: return "JPEG";
	case IB_IMG_PNG: return "PNG";
	case IB_IMG_WEBP: return "WebP";
	case IB_IMG_UNKNOWN: break;
	}
	return "unknown";
}

/* ---- the decoder of one thread ------------------------------------------ */

static void jpeg_error_exit(j_common_ptr c)
{
	longjmp(((jpeg_err *)c->err)->env, 1);
}

/* Warnings (level -1) are errors; trace messages are dropped. */
static void jpeg_emit_message(j_common_ptr c, int level)
{
	if (level < 0)
		c->err->error_exit(c);
}

static void jpeg_progress(j_common_ptr c)
{
	j_decompress_ptr d = (j_decompress_ptr)c;
	if (d->input_scan_number > JPEG_MAX_SCANS) {
		((jpeg_err *)c->err)->too_many_scans = 1;
		c->err->error_exit(c);
	}
}

static int jpeg_create(ib_image *im)
{
	im->jd.err = jpeg_std_error(&im->je.pub);
	im->je.pub.error_exit = jpeg_error_exit;
	im->je.pub.emit_message = jpeg_emit_message;
	im->jp.progress_monitor = jpeg_progress;
	if (setjmp(im->je.env)) /* out of memory */
		return -1;
	jpeg_create_decompress(&im->jd);
	im->jd.progress = &im->jp;
	im->jd_live = 1;
	return 0;
}

ib_image *ib_image_new(void)
{
	ib_image *im = calloc(1, sizeof *im);
	if (im && jpeg_create(im)) {
		free(im);
		return NULL;
	}
	return im;
}

void ib_image_free(ib_image *im)
{
	if (!im)
		return;
	if (im->jd_live)
		jpeg_destroy_decompress(&im->jd);
	free(im->pix);
	free(im->rgb);
	free(im->unpadded);
	free(im->rs);
	free(im);
}

void ib_image_last_size(const ib_image *im, uint32_t *w, uint32_t *h)
{
	*w = im->last_w;
	*h = im->last_h;
}

void ib_image_last_crop(const ib_image *im, uint32_t crop[4])
{
	memcpy(crop, im->last_crop, sizeof im->last_crop);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	uint8_t *p = realloc(*buf, need);
	if (!p)
		return IBSTORE_ENOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/* ---- options ------------------------------------------------------------ */

void ib_image_opts_defaults(ibstore_image_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->layout = IBSTORE_LAYOUT_HWC;
	o->dtype = IBSTORE_DTYPE_UINT8;
	o->mode = IBSTORE_IMAGES_EVAL;
	o->scale[0] = 0.08f;
	o->scale[1] = 1.0f;
	o->ratio[0] = 3.0f / 4.0f;
	o->ratio[1] = 4.0f / 3.0f;
	o->flip = 0.5f;
	for (int c = 0; c < 3; c++)
		o->std[c] = 1.0f;
	o->max_pixels = (uint64_t)MAX_SIDE * MAX_SIDE;
}

int ib_image_opts_check(const ibstore_image_opts *o, char *err, size_t cap)
{
	if (!o)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image options: NULL");
	if (o->width < 1 || o->width > MAX_SIDE || o->height < 1 || o->height > MAX_SIDE)
		return ib_failn(err, cap, IBSTORE_EINVAL,
				"image width x height %" PRIu32 " x %" PRIu32
				": each must be 1..%u",
				o->width, o->height, MAX_SIDE);
	if (o->layout != IBSTORE_LAYOUT_HWC && o->layout != IBSTORE_LAYOUT_CHW)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image layout %d: not hwc or chw",
				(int)o->layout);
	if (o->dtype != IBSTORE_DTYPE_UINT8 && o->dtype != IBSTORE_DTYPE_FLOAT32)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image dtype %d: not uint8 or float32",
				(int)o->dtype);
	if (o->mode != IBSTORE_IMAGES_EVAL && o->mode != IBSTORE_IMAGES_TRAIN)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image mode %d: not eval or train",
				(int)o->mode);
	if (!(o->scale[0] > 0 && o->scale[0] <= o->scale[1] && o->scale[1] <= 1))
		return ib_failn(err, cap, IBSTORE_EINVAL,
				"image scale [%g, %g]: need 0 < low <= high <= 1",
				(double)o->scale[0], (double)o->scale[1]);
	if (!(o->ratio[0] > 0 && o->ratio[0] <= o->ratio[1] && isfinite(o->ratio[1])))
		return ib_failn(err, cap, IBSTORE_EINVAL,
				"image ratio [%g, %g]: need 0 < low <= high (finite)",
				(double)o->ratio[0], (double)o->ratio[1]);
	if (!(o->flip >= 0 && o->flip <= 1))
		return ib_failn(err, cap, IBSTORE_EINVAL, "image flip %g: not a probability 0..1",
				(double)o->flip);
	if (o->pad > MAX_SIDE)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image pad %" PRIu32 ": more than %u",
				o->pad, MAX_SIDE);
	if (o->pad && o->mode != IBSTORE_IMAGES_TRAIN)
		return ib_failn(err, cap, IBSTORE_EINVAL,
				"image pad %" PRIu32 ": a training augmentation (mode train), "
				"not for eval", o->pad);
	if (o->resize_short > 8 * MAX_SIDE)
		return ib_failn(err, cap, IBSTORE_EINVAL,
				"image resize_short %" PRIu32 ": more than %u", o->resize_short,
				8 * MAX_SIDE);
	for (int c = 0; c < 3; c++) {
		if (!isfinite(o->mean[c]))
			return ib_failn(err, cap, IBSTORE_EINVAL, "image mean[%d] %g: not finite",
					c, (double)o->mean[c]);
		if (!isfinite(o->std[c]) || o->std[c] == 0)
			return ib_failn(err, cap, IBSTORE_EINVAL,
					"image std[%d] %g: must be finite and not 0", c,
					(double)o->std[c]);
	}
	if (o->max_pixels == 0)
		return ib_failn(err, cap, IBSTORE_EINVAL, "image max_pixels 0: must be at least 1");
	return 0;
}

size_t ib_image_sample_size(const ibstore_image_opts *o)
{
	size_t elem = o->dtype == IBSTORE_DTYPE_FLOAT32 ? sizeof(float) : 1;
	return (size_t)o->width * o->height * 3 * elem;
}

/* ---- the random stream -------------------------------------------------- */

/* splitmix64: the increment, then the finaliser (a bijection). */
static uint64_t mix64(uint64_t x)
{
	return ib_mix64(x + 0x9e3779b97f4a7c15ull);
}

double ib_image_uniform(uint64_t seed, uint32_t epoch, uint64_t id, uint32_t k)
{
	/* Each step is a bijection of its word, so distinct (id, epoch, k)
	 * under one seed never share a state; "image" keeps the stream apart
	 * from prune.c's. */
	uint64_t h = mix64(seed ^ 0x696d616765ull);
	h = mix64(h ^ id);
	h = mix64(h ^ ((uint64_t)epoch << 32 | k));
	return (double)(h >> 11) * 0x1.0p-53;
}

/* ---- crop geometry ------------------------------------------------------ */

/* The draws of a train sample: attempt i (0..9) uses k = 4i (area), 4i + 1
 * (log aspect ratio), 4i + 2 (top) and 4i + 3 (left); the flip is k = 40;
 * with pad, the window's top is k = 41 and its left k = 42. */
#define K_ATTEMPT(i, j) (4u * (i) + (j))
#define K_FLIP 40u
#define K_PAD_TOP 41u
#define K_PAD_LEFT 42u

/* torchvision.transforms.RandomResizedCrop.get_params, in doubles, with
 * Python's round (half to even: rint) and randint(0, n) = floor(u * (n + 1));
 * with pad, the whole image (resized, then pad_crop draws its window). */
static void train_box(const ibstore_image_opts *o, uint32_t w, uint32_t h, uint64_t seed,
		      uint32_t epoch, uint64_t id, ib_box *b)
{
	b->flip = ib_image_uniform(seed, epoch, id, K_FLIP) < (double)o->flip;
	if (o->pad) {
		b->x = b->y = 0;
		b->w = w;
		b->h = h;
		return;
	}
	double area = (double)w * h;
	double s0 = o->scale[0], s1 = o->scale[1];
	double lr0 = log((double)o->ratio[0]), lr1 = log((double)o->ratio[1]);
	for (uint32_t i = 0; i < 10; i++) {
		double target = area * (s0 + (s1 - s0) * ib_image_uniform(seed, epoch, id,
									  K_ATTEMPT(i, 0)));
		double aspect =
			exp(lr0 + (lr1 - lr0) * ib_image_uniform(seed, epoch, id, K_ATTEMPT(i, 1)));
		double cw = rint(sqrt(target * aspect)), ch = rint(sqrt(target / aspect));
		if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
			b->w = (uint32_t)cw;
			b->h = (uint32_t)ch;
			b->y = (uint32_t)(ib_image_uniform(seed, epoch, id, K_ATTEMPT(i, 2)) *
					  (h - b->h + 1));
			b->x = (uint32_t)(ib_image_uniform(seed, epoch, id, K_ATTEMPT(i, 3)) *
					  (w - b->w + 1));
			return;
		}
	}
	/* The fallback: the whole image, clamped to the ratio range, centred.
	 * At least one pixel each way, where torchvision would give an empty
	 * crop for an extreme ratio range. */
	double in_ratio = (double)w / h, cw = w, ch = h;
	if (in_ratio < o->ratio[0])
		ch = rint(cw / o->ratio[0]);
	else if (in_ratio > o->ratio[1])
		cw = rint(ch * o->ratio[1]);
	b->w = cw < 1 ? 1 : cw > w ? w : (uint32_t)cw;
	b->h = ch < 1 ? 1 : ch > h ? h : (uint32_t)ch;
	b->x = (w - b->w) / 2;
	b->y = (h - b->h) / 2;
}

/* A region of the source in (fractional) pixels. */
typedef struct region {
	double x, y, w, h;
	int flip;
} region;

/* Eval: the image scaled so that its short side is R (resize_short, or
 * min(width, height) / 0.875 rounded), then the centre width x height.
 * Where the crop would not fit the scaled image (an output much wider than
 * tall, say) the image is scaled up until it does, where torchvision
 * would pad with black.  The crop is centred exactly; torchvision rounds
 * its offset to whole pixels of the resized image. */
static void eval_region(const ibstore_image_opts *o, uint32_t w, uint32_t h, region *r)
{
	double short_out = o->width < o->height ? o->width : o->height;
	double R = o->resize_short ? (double)o->resize_short : rint(short_out / 0.875);
	double f = R / (w < h ? w : h);
	if (f < (double)o->width / w)
		f = (double)o->width / w;
	if (f < (double)o->height / h)
		f = (double)o->height / h;
	r->w = fmin(o->width / f, w);
	r->h = fmin(o->height / f, h);
	r->x = (w - r->w) / 2;
	r->y = (h - r->h) / 2;
	r->flip = 0;
}

static void region_of(const ibstore_image_opts *o, uint32_t w, uint32_t h, uint64_t seed,
		      uint32_t epoch, uint64_t id, region *r)
{
	if (o->mode == IBSTORE_IMAGES_TRAIN) {
		ib_box b;
		train_box(o, w, h, seed, epoch, id, &b);
		*r = (region){b.x, b.y, b.w, b.h, b.flip};
	} else {
		eval_region(o, w, h, r);
	}
}

void ib_image_box(const ibstore_image_opts *o, uint32_t w, uint32_t h, uint64_t seed,
		  uint32_t epoch, uint64_t id, ib_box *out)
{
	if (o->mode == IBSTORE_IMAGES_TRAIN) {
		train_box(o, w, h, seed, epoch, id, out);
		return;
	}
	region r;
	eval_region(o, w, h, &r);
	double x = floor(r.x + 0.5), y = floor(r.y + 0.5);
	double bw = fmax(1, fmin(floor(r.w + 0.5), w - x));
	double bh = fmax(1, fmin(floor(r.h + 0.5), h - y));
	*out = (ib_box){(uint32_t)x, (uint32_t)y, (uint32_t)bw, (uint32_t)bh, 0};
}

/* ---- decoding ----------------------------------------------------------- */

/* One decode: the header read first (size checked against max_pixels),
 * then the pixels into im->pix at 1 / (denom / num) of the full size. */
typedef struct job {
	ib_img_format fmt;
	const uint8_t *src;
	size_t n;
	uint32_t w, h;   /* full size */
	int cmyk;        /* JPEG: CMYK or YCCK */
	ib_image *jpeg;  /* JPEG: the decoder whose jd read the header */
	spng_ctx *png;   /* PNG: the context the header was read with */
	int denom;       /* JPEG's DCT scale 1/denom (1 for the others) */
	uint32_t dw, dh; /* the decoded size */
	/* the pixels wanted, in the decoded size's coordinates (JPEG: the
	 * rest is not converted), and those im->pix holds: x, y, w, h */
	uint32_t want[4], got[4];
	char *err;
	size_t cap;
} job;

/* After a longjmp out of libjpeg: the message, and jd reset for the next
 * image (jpeg_abort keeps the decoder's permanent memory). */
static int jpeg_fail(ib_image *im, job *j, const char *what)
{
	char msg[JMSG_LENGTH_MAX];
	int rc;
	if (im->je.too_many_scans) {
		rc = ib_failn(j->err, j->cap, IBSTORE_ECORRUPT,
			      "JPEG %s: progressive, more than %d scans", what, JPEG_MAX_SCANS);
	} else if (im->je.pub.msg_code == JERR_OUT_OF_MEMORY) {
		rc = ib_failn(j->err, j->cap, IBSTORE_ENOMEM, "JPEG %s: out of memory", what);
	} else {
		im->je.pub.format_message((j_common_ptr)&im->jd, msg);
		rc = ib_failn(j->err, j->cap, IBSTORE_ECORRUPT, "JPEG %s: %s", what, msg);
	}
	im->je.too_many_scans = 0;
	jpeg_abort_decompress(&im->jd);
	j->jpeg = NULL;
	return rc;
}

/* Reads the header into im->jd, which stays ready for jpeg_decode (or is
 * reset by job_end). */
static int jpeg_header(ib_image *im, job *j)
{
	struct jpeg_decompress_struct *d = &im->jd;
	j->jpeg = im;
	if (setjmp(im->je.env))
		return jpeg_fail(im, j, "header");
	jpeg_mem_src(d, j->src, (unsigned long)j->n);
	/* TRUE: a stream of tables only is an error (JERR_NO_IMAGE) */
	jpeg_read_header(d, TRUE);
	if (d->image_width == 0 || d->image_height == 0)
		return ib_failn(j->err, j->cap, IBSTORE_ECORRUPT, "JPEG header: no image");
	j->w = d->image_width;
	j->h = d->image_height;
	j->cmyk = d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK;
	return 0;
}

static int png_fail(job *j, int rc, const char *what)
{
	int code = rc == SPNG_EMEM ? IBSTORE_ENOMEM : IBSTORE_ECORRUPT;
	return ib_failn(j->err, j->cap, code, "PNG %s: %s", what, spng_strerror(rc));
}

static int png_header(job *j)
{
	j->png = spng_ctx_new(0);
	if (!j->png)
		return ib_failn(j->err, j->cap, IBSTORE_ENOMEM, "PNG: out of memory");
	int rc = spng_set_crc_action(j->png, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
	if (!rc)
		rc = spng_set_chunk_limits(j->png, PNG_CHUNK_LIMIT, PNG_CACHE_LIMIT);
	if (!rc)
		rc = spng_set_png_buffer(j->png, j->src, j->n);
	if (rc)
		return png_fail(j, rc, "setup");
	struct spng_ihdr ihdr;
	rc = spng_get_ihdr(j->png, &ihdr);
	if (rc)
		return png_fail(j, rc, "header");
	j->w = ihdr.width;
	j->h = ihdr.height;
	return 0;
}

static int webp_header(job *j)
{
	WebPBitstreamFeatures f;
	VP8StatusCode st = WebPGetFeatures(j->src, j->n, &f);
	if (st != VP8_STATUS_OK)
		return ib_failn(j->err, j->cap, IBSTORE_ECORRUPT, "WebP header: status %d",
				(int)st);
	if (f.has_animation)
		return ib_failn(j->err, j->cap, IBSTORE_EUNSUPPORTED,
				"WebP: an animation, not one image");
	if (f.width <= 0 || f.height <= 0)
		return ib_failn(j->err, j->cap, IBSTORE_ECORRUPT, "WebP header: size %d x %d",
				f.width, f.height);
	j->w = (uint32_t)f.width;
	j->h = (uint32_t)f.height;
	return 0;
}

static int job_header(ib_image *im, job *j, uint64_t max_pixels)
{
	j->fmt = ib_image_sniff(j->src, j->n);
	j->denom = 1;
	int rc;
	switch (j->fmt) {
	case IB_IMG_JPEG: rc = jpeg_header(im, j); break;
	case IB_IMG_PNG: rc = png_header(j); break;
	case IB_IMG_WEBP: rc = webp_header(j); break;
	default:
		return ib_failn(j->err, j->cap, IBSTORE_EUNSUPPORTED,
				"not a JPEG, PNG or WebP image (%zu bytes)", j->n);
	}
	if (rc)
		return rc;
	if ((uint64_t)j->w * j->h > max_pixels)
		return ib_failn(j->err, j->cap, IBSTORE_ETOOBIG,
				"%s of %" PRIu32 " x %" PRIu32
				" pixels: more than max_pixels %" PRIu64,
				ib_image_format_name(j->fmt), j->w, j->h, max_pixels);
	return 0;
}

static void job_end(job *j)
{
	if (j->jpeg)
		jpeg_abort_decompress(&j->jpeg->jd);
	j->jpeg = NULL;
	spng_ctx_free(j->png);
	j->png = NULL;
}

/* The smallest DCT scale at which region r still covers dw x dh pixels,
 * among 1/8, 1/4, 1/2 and 1: the scales with fast inverse DCTs.  With
 * libjpeg-turbo 2.1 a 500 x 375 JPEG decodes in about 0.7 ms at 1/1 but
 * 0.95 ms at 3/4 (and 1.1 ms at 7/8), so the others cost more than the
 * smaller image saves: an eval sample of 224 from it takes about a third
 * longer at 3/4 than at 1/1.  1/1 when none smaller covers. */
static void jpeg_pick_scale(job *j, const region *r, uint32_t dw, uint32_t dh)
{
	j->denom = 1;
	for (int denom = 8; denom > 1; denom /= 2) {
		/* a hair of tolerance: an eval crop is exactly the output size
		 * scaled, give or take rounding */
		if (r->w / denom >= dw - 1e-6 && r->h / denom >= dh - 1e-6) {
			j->denom = denom;
			return;
		}
	}
}

/* Adobe inverted CMYK (4 bytes a pixel) to RGB8, in place. */
static void cmyk_to_rgb(uint8_t *p, size_t npix)
{
	for (size_t i = 0; i < npix; i++) {
		unsigned c = p[4 * i], m = p[4 * i + 1], y = p[4 * i + 2], k = p[4 * i + 3];
		p[3 * i] = (uint8_t)((c * k + 127) / 255);
		p[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
		p[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
	}
}

/* Rows handed to one jpeg_read_scanlines call (libjpeg returns at most its
 * rec_outbuf_height, 1 to 4, at a time). */
#define JPEG_ROWS 16

/* Decodes j->want at scale 1/j->denom into im->pix: the columns from the
 * iMCU boundary at or before one iMCU left of the wanted ones to one iMCU
 * past them, the rows from one iMCU above to the last wanted row.  The
 * rest of the scan is skipped (entropy-decoded only) and the stream
 * finished, so its errors and warnings are seen. */
static int jpeg_decode(ib_image *im, job *j)
{
	struct jpeg_decompress_struct *d = &im->jd;
	if (setjmp(im->je.env))
		return jpeg_fail(im, j, "data");
	d->scale_num = 1;
	d->scale_denom = (unsigned)j->denom;
	d->out_color_space = j->cmyk ? JCS_CMYK : JCS_RGB;
	jpeg_start_decompress(d);
	uint32_t dw = d->output_width, dh = d->output_height;
	uint32_t mx = (uint32_t)(d->max_h_samp_factor * d->min_DCT_scaled_size);
	uint32_t my = (uint32_t)(d->max_v_samp_factor * d->min_DCT_scaled_size);
	uint32_t x0 = j->want[0] > mx ? j->want[0] - mx : 0;
	uint32_t x1 = j->want[0] + j->want[2] + mx;
	uint32_t y0 = j->want[1] > my ? j->want[1] - my : 0;
	uint32_t y1 = j->want[1] + j->want[3];
	x1 = x1 < dw ? x1 : dw;
	y1 = y1 < dh ? y1 : dh;
	if (x0 >= x1 || y0 >= y1) /* cannot happen: want lies inside */
		x0 = 0, x1 = dw, y0 = 0, y1 = dh;
	JDIMENSION cx = x0, cw = x1 - x0;
	if (cw < dw)
		jpeg_crop_scanline(d, &cx, &cw); /* cx down to an iMCU, cw out */
	size_t bpp = j->cmyk ? 4 : 3, stride = (size_t)cw * bpp;
	if (grow(&im->pix, &im->pix_cap, stride * (y1 - y0)))
		ERREXIT(d, JERR_OUT_OF_MEMORY);
	if (y0)
		jpeg_skip_scanlines(d, y0);
	while (d->output_scanline < y1) {
		JSAMPROW rows[JPEG_ROWS];
		JDIMENSION n = y1 - d->output_scanline, got;
		n = n < JPEG_ROWS ? n : JPEG_ROWS;
		for (JDIMENSION i = 0; i < n; i++)
			rows[i] = im->pix + (d->output_scanline - y0 + i) * stride;
		got = jpeg_read_scanlines(d, rows, n);
		if (got == 0) /* only a suspending source returns none */
			ERREXIT(d, JERR_INPUT_EMPTY);
	}
	if (d->output_scanline < dh)
		jpeg_skip_scanlines(d, dh - d->output_scanline);
	jpeg_finish_decompress(d);
	j->jpeg = NULL;
	if (j->cmyk)
		cmyk_to_rgb(im->pix, (size_t)cw * (y1 - y0));
	j->dw = dw;
	j->dh = dh;
	j->got[0] = (uint32_t)cx;
	j->got[1] = y0;
	j->got[2] = (uint32_t)cw;
	j->got[3] = y1 - y0;
	return 0;
}

/* PNG and WebP decode the whole image at full size. */
static void decoded_whole(job *j)
{
	j->dw = j->w;
	j->dh = j->h;
	j->got[0] = j->got[1] = 0;
	j->got[2] = j->w;
	j->got[3] = j->h;
}

static int png_decode(ib_image *im, job *j)
{
	size_t len;
	int rc = spng_decoded_image_size(j->png, SPNG_FMT_RGB8, &len);
	if (rc)
		return png_fail(j, rc, "header");
	if (len != (size_t)j->w * j->h * 3)
		return ib_failn(j->err, j->cap, IBSTORE_ECORRUPT,
				"PNG: %zu bytes for %" PRIu32 " x %" PRIu32 " RGB", len, j->w,
				j->h);
	if (grow(&im->pix, &im->pix_cap, len))
		return ib_failn(j->err, j->cap, IBSTORE_ENOMEM, "PNG: out of memory");
	rc = spng_decode_image(j->png, im->pix, len, SPNG_FMT_RGB8, 0);
	if (rc)
		return png_fail(j, rc, "data");
	decoded_whole(j);
	return 0;
}

static int webp_decode(ib_image *im, job *j)
{
	size_t len = (size_t)j->w * j->h * 3;
	if (grow(&im->pix, &im->pix_cap, len))
		return ib_failn(j->err, j->cap, IBSTORE_ENOMEM, "WebP: out of memory");
	if (!WebPDecodeRGBInto(j->src, j->n, im->pix, len, (int)j->w * 3))
		return ib_failn(j->err, j->cap, IBSTORE_ECORRUPT,
				"WebP data: truncated or corrupt");
	decoded_whole(j);
	return 0;
}

/* Decodes at the scale j says into im->pix: RGB8, j->got[2] pixels a row,
 * covering at least j->want (PNG and WebP: the whole image). */
static int job_decode(ib_image *im, job *j)
{
	int rc;
	switch (j->fmt) {
	case IB_IMG_JPEG: rc = jpeg_decode(im, j); break;
	case IB_IMG_PNG: rc = png_decode(im, j); break;
	default: rc = webp_decode(im, j); break;
	}
	if (!rc) {
		im->last_w = j->dw;
		im->last_h = j->dh;
		memcpy(im->last_crop, j->got, sizeof j->got);
	}
	return rc;
}

int ib_image_decode_rgb(ib_image *im, const uint8_t *src, size_t n, uint64_t max_pixels,
			uint8_t **rgb, uint32_t *w, uint32_t *h, char *err, size_t cap)
{
	job j = {.src = src, .n = n, .err = err, .cap = cap};
	*rgb = NULL;
	int rc = job_header(im, &j, max_pixels);
	if (!rc) {
		j.want[2] = j.w;
		j.want[3] = j.h;
		rc = job_decode(im, &j);
	}
	job_end(&j);
	if (rc)
		return rc;
	size_t len = (size_t)j.w * j.h * 3;
	*rgb = malloc(len);
	if (!*rgb)
		return ib_failn(err, cap, IBSTORE_ENOMEM, "out of memory for %zu bytes", len);
	memcpy(*rgb, im->pix, len);
	*w = j.w;
	*h = j.h;
	return 0;
}

/* ---- the sample --------------------------------------------------------- */

/* The resized RGB8 sample (W x H x 3) into the output's layout and dtype. */
static void emit(const ibstore_image_opts *o, const uint8_t *rgb, void *out)
{
	size_t npix = (size_t)o->width * o->height;
	if (o->dtype == IBSTORE_DTYPE_UINT8) {
		uint8_t *d = out;
		if (o->layout == IBSTORE_LAYOUT_HWC) {
			if (d != rgb)
				memcpy(d, rgb, npix * 3);
			return;
		}
		uint8_t *d0 = d, *d1 = d + npix, *d2 = d + 2 * npix;
		for (size_t i = 0; i < npix; i++) {
			d0[i] = rgb[3 * i];
			d1[i] = rgb[3 * i + 1];
			d2[i] = rgb[3 * i + 2];
		}
		return;
	}
	float lut[3][256];
	for (int c = 0; c < 3; c++)
		for (int v = 0; v < 256; v++)
			lut[c][v] = ((float)v / 255.0f - o->mean[c]) / o->std[c];
	float *d = out;
	if (o->layout == IBSTORE_LAYOUT_HWC) {
		for (size_t i = 0; i < npix * 3; i += 3) {
			d[i] = lut[0][rgb[i]];
			d[i + 1] = lut[1][rgb[i + 1]];
			d[i + 2] = lut[2][rgb[i + 2]];
		}
		return;
	}
	/* one pass over the pixels, three planes written in order */
	float *d0 = d, *d1 = d + npix, *d2 = d + 2 * npix;
	for (size_t i = 0; i < npix; i++) {
		d0[i] = lut[0][rgb[3 * i]];
		d1[i] = lut[1][rgb[3 * i + 1]];
		d2[i] = lut[2][rgb[3 * i + 2]];
	}
}

/* torchvision's RandomCrop(size, padding=pad) then the flip, on the image
 * already resized to W x H (src): the image framed by `pad` black pixels
 * on every side, the W x H window at (left, top), each drawn uniformly
 * from 0..2 pad, mirrored when `flip`.  dst and src do not overlap. */
static void pad_crop(const ibstore_image_opts *o, const uint8_t *src, uint8_t *dst,
		     uint64_t seed, uint32_t epoch, uint64_t id, int flip)
{
	uint32_t W = o->width, H = o->height, span = 2 * o->pad + 1;
	/* the window's origin relative to the image: top - pad, left - pad */
	int64_t dy = (int64_t)(ib_image_uniform(seed, epoch, id, K_PAD_TOP) * span) - o->pad;
	int64_t dx = (int64_t)(ib_image_uniform(seed, epoch, id, K_PAD_LEFT) * span) - o->pad;
	for (uint32_t y = 0; y < H; y++) {
		uint8_t *d = dst + (size_t)y * W * 3;
		int64_t sy = (int64_t)y + dy;
		if (sy < 0 || sy >= H) {
			memset(d, 0, (size_t)W * 3);
			continue;
		}
		const uint8_t *s = src + (size_t)sy * W * 3;
		for (uint32_t x = 0; x < W; x++) {
			int64_t sx = (int64_t)(flip ? W - 1 - x : x) + dx;
			uint8_t *px = d + (size_t)x * 3;
			if (sx < 0 || sx >= W) {
				px[0] = px[1] = px[2] = 0;
			} else {
				memcpy(px, s + sx * 3, 3);
			}
		}
	}
}

int ib_image_sample(ib_image *im, const ibstore_image_opts *o, const uint8_t *src, size_t n,
		    uint64_t seed, uint32_t epoch, uint64_t id, void *out, char *err, size_t cap)
{
	job j = {.src = src, .n = n, .err = err, .cap = cap};
	int rc = job_header(im, &j, o->max_pixels);
	if (rc)
		goto done;
	region r;
	region_of(o, j.w, j.h, seed, epoch, id, &r);
	if (j.fmt == IB_IMG_JPEG)
		jpeg_pick_scale(&j, &r, o->width, o->height);
	/* the region at that scale (JPEG's decoded size is the full size over
	 * denom, rounded up) and the whole pixels the resampler reads */
	double s = 1.0 / j.denom;
	uint32_t sw = (j.w + (uint32_t)j.denom - 1) / (uint32_t)j.denom;
	uint32_t sh = (j.h + (uint32_t)j.denom - 1) / (uint32_t)j.denom;
	double rx = r.x * s, ry = r.y * s;
	double rw = fmin(r.w * s, sw - rx), rh = fmin(r.h * s, sh - ry);
	j.want[0] = (uint32_t)floor(rx);
	j.want[1] = (uint32_t)floor(ry);
	j.want[2] = (uint32_t)fmin(ceil(rx + rw), sw) - j.want[0];
	j.want[3] = (uint32_t)fmin(ceil(ry + rh), sh) - j.want[1];
	rc = job_decode(im, &j);
	if (rc)
		goto done;
	if (j.dw != sw || j.dh != sh) { /* libjpeg rounds as TurboJPEG does */
		rc = ib_failn(err, cap, IBSTORE_ECORRUPT, "JPEG: decoded %" PRIu32 " x %" PRIu32
				" at 1/%d, not %" PRIu32 " x %" PRIu32, j.dw, j.dh, j.denom, sw, sh);
		goto done;
	}
	uint8_t *rgb = out;
	if (o->layout != IBSTORE_LAYOUT_HWC || o->dtype != IBSTORE_DTYPE_UINT8) {
		if (grow(&im->rgb, &im->rgb_cap, (size_t)o->width * o->height * 3)) {
			rc = ib_failn(err, cap, IBSTORE_ENOMEM, "out of memory");
			goto done;
		}
		rgb = im->rgb;
	}
	/* with pad, the resize goes to a scratch image and the shifted, flipped
	 * window from there to rgb */
	uint8_t *resized = rgb;
	if (o->pad) {
		if (grow(&im->unpadded, &im->unpadded_cap, (size_t)o->width * o->height * 3)) {
			rc = ib_failn(err, cap, IBSTORE_ENOMEM, "out of memory");
			goto done;
		}
		resized = im->unpadded;
	}
	if (ib_image_resize(im->pix, (size_t)j.got[2] * 3, rx - j.got[0], ry - j.got[1], rw, rh,
			    resized, o->width, o->height, o->pad ? 0 : r.flip, &im->rs,
			    &im->rs_cap)) {
		rc = ib_failn(err, cap, IBSTORE_ENOMEM, "out of memory");
		goto done;
	}
	if (o->pad)
		pad_crop(o, resized, rgb, seed, epoch, id, r.flip);
	emit(o, rgb, out);
done:
	job_end(&j);
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* Written with plain fopen (not atomic: a failure removes the file). */
int ib_image_write_png(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h, char *err,
		       size_t cap)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return ib_failn(err, cap, IBSTORE_EIO, "%s: %s", path, strerror(errno));
	int code = IBSTORE_EIO;
	spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	if (!ctx) {
		code = ib_failn(err, cap, IBSTORE_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	struct spng_ihdr ihdr = {
		.width = w,
		.height = h,
		.bit_depth = 8,
		.color_type = SPNG_COLOR_TYPE_TRUECOLOR,
	};
	int rc = spng_set_png_file(ctx, f);
	if (!rc)
		rc = spng_set_ihdr(ctx, &ihdr);
	if (!rc)
		rc = spng_encode_image(ctx, rgb, (size_t)w * h * 3, SPNG_FMT_PNG,
				       SPNG_ENCODE_FINALIZE);
	if (rc) {
		code = ib_failn(err, cap, IBSTORE_EIO, "%s: PNG encoding: %s", path,
				spng_strerror(rc));
		goto fail;
	}
	spng_ctx_free(ctx);
	ctx = NULL;
	if (fclose(f)) {
		f = NULL;
		code = ib_failn(err, cap, IBSTORE_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	spng_ctx_free(ctx);
	if (f)
		fclose(f);
	remove(path);
	return code;
}
