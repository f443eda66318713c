/*
 * test_image.c — the image stage of one sample (src/image.c,
 * src/image_resize.c) on images the test encodes itself: formats known by
 * their magic bytes; JPEG pixels equal to libjpeg-turbo's own, PNG and
 * lossless WebP equal to their source; the crop geometry equal to
 * torchvision's RandomResizedCrop formula draw for draw; the DCT scale that
 * still covers the crop; layouts and dtypes; determinism by (seed, epoch,
 * id); truncated, corrupt, foreign and oversized payloads refused with the
 * right code and a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include "fixture.h"
#include "ibstore.h"
#include "image.h"

#define ERR_CAP 512

/* ---- images the tests encode -------------------------------------------- */

/* A w x h RGB pattern with edges, gradients and texture (not JPEG-friendly
 * on purpose: chroma and detail everywhere). */
static uint8_t *pattern(uint32_t w, uint32_t h, uint32_t salt)
{
	uint8_t *p = malloc((size_t)w * h * 3);
	assert_non_null(p);
	uint32_t s = 2463534242u ^ salt;
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			s ^= s << 13;
			s ^= s >> 17;
			s ^= s << 5;
			uint8_t *q = p + ((size_t)y * w + x) * 3;
			int dx = (int)x - (int)(w / 3), dy = (int)y - (int)(h / 2);
			int disc = dx * dx + dy * dy < (int)(h * h / 9);
			q[0] = (uint8_t)(x * 255 / w);
			q[1] = (uint8_t)(disc ? 230 : y * 255 / h);
			q[2] = (uint8_t)(((x / 8 + y / 8) & 1) * 160 + (s & 63));
		}
	return p;
}

static uint8_t *solid(uint32_t w, uint32_t h, const uint8_t rgb[3])
{
	uint8_t *p = malloc((size_t)w * h * 3);
	assert_non_null(p);
	for (size_t i = 0; i < (size_t)w * h; i++)
		memcpy(p + 3 * i, rgb, 3);
	return p;
}

/* A malloc'd copy of a codec's buffer. */
static uint8_t *dup(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	assert_non_null(d);
	memcpy(d, p, n);
	return d;
}

/* JPEG of pixels in format pf (TJPF_RGB, TJPF_GRAY, TJPF_CMYK). */
static uint8_t *jpeg(const uint8_t *pix, uint32_t w, uint32_t h, int pf, int subsamp, int q,
		     size_t *len)
{
	tjhandle tj = tjInitCompress();
	assert_non_null(tj);
	unsigned char *buf = NULL;
	unsigned long n = 0;
	assert_int_equal(tjCompress2(tj, pix, (int)w, 0, (int)h, pf, &buf, &n, subsamp, q, 0), 0);
	uint8_t *out = dup(buf, n);
	*len = n;
	tjFree(buf);
	tjDestroy(tj);
	return out;
}

static uint8_t *jpeg_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, int subsamp, size_t *len)
{
	return jpeg(rgb, w, h, TJPF_RGB, subsamp, 90, len);
}

/* PNG of pixels in the PNG's own format (16-bit samples host-endian). */
static uint8_t *png(const void *pix, size_t n, uint32_t w, uint32_t h, uint8_t color_type,
		    uint8_t depth, struct spng_plte *plte, size_t *len)
{
	spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	assert_non_null(ctx);
	assert_int_equal(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
	struct spng_ihdr ihdr = {.width = w,
				 .height = h,
				 .bit_depth = depth,
				 .color_type = color_type};
	assert_int_equal(spng_set_ihdr(ctx, &ihdr), 0);
	if (plte)
		assert_int_equal(spng_set_plte(ctx, plte), 0);
	assert_int_equal(spng_encode_image(ctx, pix, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE), 0);
	int err = 0;
	uint8_t *buf = spng_get_png_buffer(ctx, len, &err);
	assert_int_equal(err, 0);
	assert_non_null(buf);
	spng_ctx_free(ctx);
	return buf; /* malloc'd by libspng: free() */
}

static uint8_t *png_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, size_t *len)
{
	return png(rgb, (size_t)w * h * 3, w, h, SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, len);
}

static uint8_t *webp(const uint8_t *rgb, uint32_t w, uint32_t h, int lossless, size_t *len)
{
	uint8_t *buf = NULL;
	*len = lossless ? WebPEncodeLosslessRGB(rgb, (int)w, (int)h, (int)w * 3, &buf) :
			  WebPEncodeRGB(rgb, (int)w, (int)h, (int)w * 3, 90, &buf);
	assert_true(*len > 0);
	uint8_t *out = dup(buf, *len);
	WebPFree(buf);
	return out;
}

static ibstore_image_opts opts_of(uint32_t w, uint32_t h, ibstore_images_mode mode)
{
	ibstore_image_opts o;
	assert_int_equal(ibstore_image_opts_init(&o), 0);
	o.width = w;
	o.height = h;
	o.mode = mode;
	return o;
}

/* Decodes at full size, failing the test on error. */
static uint8_t *decode(ib_image *im, const uint8_t *src, size_t n, uint32_t *w, uint32_t *h)
{
	uint8_t *rgb = NULL;
	char err[ERR_CAP] = "";
	int rc = ib_image_decode_rgb(im, src, n, (uint64_t)1 << 30, &rgb, w, h, err, sizeof err);
	if (rc)
		fail_msg("decode: %d %s", rc, err);
	return rgb;
}

/* ---- formats ------------------------------------------------------------ */

static void test_formats_are_known_by_their_magic_bytes(void **state)
{
	(void)state;
	static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0};
	static const uint8_t pngm[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
	assert_int_equal(ib_image_sniff(jpg, sizeof jpg), IB_IMG_JPEG);
	assert_int_equal(ib_image_sniff(jpg, 2), IB_IMG_UNKNOWN);
	assert_int_equal(ib_image_sniff(pngm, 8), IB_IMG_PNG);
	assert_int_equal(ib_image_sniff(pngm, 7), IB_IMG_UNKNOWN);
	assert_int_equal(ib_image_sniff((const uint8_t *)"RIFF\x10\0\0\0WEBPVP8 ", 16),
			 IB_IMG_WEBP);
	assert_int_equal(ib_image_sniff((const uint8_t *)"RIFF\x10\0\0\0WAVEfmt ", 16),
			 IB_IMG_UNKNOWN);
	assert_int_equal(ib_image_sniff((const uint8_t *)"GIF89a", 6), IB_IMG_UNKNOWN);
	assert_int_equal(ib_image_sniff(NULL, 0), IB_IMG_UNKNOWN);
	assert_string_equal(ib_image_format_name(IB_IMG_JPEG), "JPEG");
	assert_string_equal(ib_image_format_name(IB_IMG_PNG), "PNG");
	assert_string_equal(ib_image_format_name(IB_IMG_WEBP), "WebP");
	assert_string_equal(ib_image_format_name(IB_IMG_UNKNOWN), "unknown");

	uint8_t *rgb = pattern(16, 8, 1);
	size_t n;
	uint8_t *j = jpeg_rgb(rgb, 16, 8, TJSAMP_420, &n);
	assert_int_equal(ib_image_sniff(j, n), IB_IMG_JPEG);
	free(j);
	uint8_t *p = png_rgb(rgb, 16, 8, &n);
	assert_int_equal(ib_image_sniff(p, n), IB_IMG_PNG);
	free(p);
	uint8_t *wp = webp(rgb, 16, 8, 0, &n);
	assert_int_equal(ib_image_sniff(wp, n), IB_IMG_WEBP);
	free(wp);
	free(rgb);
}

static void test_enum_names_round_trip(void **state)
{
	(void)state;
	ibstore_layout l;
	ibstore_dtype d;
	ibstore_images_mode m;
	assert_int_equal(ibstore_layout_parse("chw", &l), 0);
	assert_int_equal(l, IBSTORE_LAYOUT_CHW);
	assert_string_equal(ibstore_layout_name(IBSTORE_LAYOUT_HWC), "hwc");
	assert_int_equal(ibstore_layout_parse("CHW", &l), IBSTORE_EINVAL);
	assert_int_equal(ibstore_dtype_parse("float32", &d), 0);
	assert_int_equal(d, IBSTORE_DTYPE_FLOAT32);
	assert_string_equal(ibstore_dtype_name(IBSTORE_DTYPE_UINT8), "uint8");
	assert_int_equal(ibstore_dtype_parse("float", &d), IBSTORE_EINVAL);
	assert_int_equal(ibstore_images_mode_parse("train", &m), 0);
	assert_int_equal(m, IBSTORE_IMAGES_TRAIN);
	assert_string_equal(ibstore_images_mode_name(IBSTORE_IMAGES_EVAL), "eval");
	assert_string_equal(ibstore_images_mode_name((ibstore_images_mode)7), "unknown");
	assert_int_equal(ibstore_images_mode_parse(NULL, &m), IBSTORE_EINVAL);
	assert_int_equal(ibstore_images_mode_parse("eval", NULL), IBSTORE_EINVAL);
}

/* ---- decoding ----------------------------------------------------------- */

/* TurboJPEG's full decode of j at dw x dh (its size at some DCT scale) as
 * RGB8; a CMYK image converted by Adobe's inverted convention, the one the
 * stage follows: r = c * k / 255 (rounded) of the values TurboJPEG gives. */
static uint8_t *tj_reference(const uint8_t *j, size_t n, int cmyk, uint32_t dw, uint32_t dh)
{
	tjhandle tj = tjInitDecompress();
	assert_non_null(tj);
	uint8_t *raw = malloc((size_t)dw * dh * 4);
	assert_non_null(raw);
	assert_int_equal(tjDecompress2(tj, j, n, raw, (int)dw, 0, (int)dh,
				       cmyk ? TJPF_CMYK : TJPF_RGB, 0),
			 0);
	if (cmyk)
		for (size_t i = 0; i < (size_t)dw * dh; i++) {
			unsigned k = raw[4 * i + 3];
			for (int c = 0; c < 3; c++)
				raw[3 * i + c] = (uint8_t)((raw[4 * i + c] * k + 127) / 255);
		}
	tjDestroy(tj);
	return raw;
}

static void test_jpeg_pixels_are_libjpeg_turbos_own(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	tjhandle tj = tjInitDecompress();
	assert_non_null(tj);
	const uint32_t w = 123, h = 77; /* not multiples of the MCU */
	uint8_t *rgb = pattern(w, h, 2);
	const int subsamps[] = {TJSAMP_420, TJSAMP_444, TJSAMP_GRAY};
	for (size_t s = 0; s < 3; s++) {
		size_t n;
		uint8_t *j = jpeg_rgb(rgb, w, h, subsamps[s], &n);
		uint32_t dw, dh;
		uint8_t *got = decode(im, j, n, &dw, &dh);
		assert_int_equal(dw, w);
		assert_int_equal(dh, h);
		uint8_t *want = tj_reference(j, n, 0, w, h);
		assert_memory_equal(got, want, (size_t)w * h * 3);
		if (subsamps[s] == TJSAMP_GRAY)
			for (size_t i = 0; i < (size_t)w * h; i++) {
				assert_int_equal(got[3 * i], got[3 * i + 1]);
				assert_int_equal(got[3 * i], got[3 * i + 2]);
			}
		free(want);
		free(got);
		free(j);
	}
	/* a grayscale JPEG compressed from one channel */
	uint8_t *gray = malloc((size_t)w * h);
	assert_non_null(gray);
	for (size_t i = 0; i < (size_t)w * h; i++)
		gray[i] = rgb[3 * i + 1];
	size_t n;
	uint8_t *j = jpeg(gray, w, h, TJPF_GRAY, TJSAMP_GRAY, 90, &n);
	uint8_t *want = malloc((size_t)w * h);
	assert_non_null(want);
	assert_int_equal(tjDecompress2(tj, j, n, want, (int)w, 0, (int)h, TJPF_GRAY, 0), 0);
	uint32_t dw, dh;
	uint8_t *got = decode(im, j, n, &dw, &dh);
	for (size_t i = 0; i < (size_t)w * h; i++)
		for (int c = 0; c < 3; c++)
			assert_int_equal(got[3 * i + c], want[i]);
	free(got);
	free(want);
	free(j);
	free(gray);
	free(rgb);
	tjDestroy(tj);
	ib_image_free(im);
}

/* CMYK (stored as YCCK) comes back in Adobe's inverted convention:
 * r = c * k / 255 of the values libjpeg-turbo hands back. */
static void test_cmyk_jpeg_converts_as_adobe_inverted(void **state)
{
	(void)state;
	const uint32_t w = 40, h = 24;
	uint8_t *cmyk = malloc((size_t)w * h * 4);
	assert_non_null(cmyk);
	for (size_t i = 0; i < (size_t)w * h; i++) {
		cmyk[4 * i] = (uint8_t)(i * 7);
		cmyk[4 * i + 1] = (uint8_t)(255 - i);
		cmyk[4 * i + 2] = (uint8_t)(i * 3 + 40);
		cmyk[4 * i + 3] = (uint8_t)(128 + i % 128);
	}
	size_t n;
	uint8_t *j = jpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_444, 95, &n);
	uint8_t *want = tj_reference(j, n, 1, w, h);
	ib_image *im = ib_image_new();
	assert_non_null(im);
	uint32_t dw, dh;
	uint8_t *got = decode(im, j, n, &dw, &dh);
	assert_memory_equal(got, want, (size_t)w * h * 3);
	free(got);
	free(want);
	free(j);
	free(cmyk);
	ib_image_free(im);
}

static void check_png(ib_image *im, const uint8_t *p, size_t n, const uint8_t *want, uint32_t w,
		      uint32_t h)
{
	uint32_t dw, dh;
	uint8_t *got = decode(im, p, n, &dw, &dh);
	assert_int_equal(dw, w);
	assert_int_equal(dh, h);
	assert_memory_equal(got, want, (size_t)w * h * 3);
	free(got);
}

/* Every PNG colour type to RGB8: gray replicated, alpha dropped (as PIL's
 * convert("RGB")), 16-bit to its high byte, palette looked up. */
static void test_png_decodes_to_its_source_pixels(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t w = 37, h = 21;
	size_t np = (size_t)w * h, n;
	uint8_t *rgb = pattern(w, h, 3);

	uint8_t *p = png_rgb(rgb, w, h, &n);
	check_png(im, p, n, rgb, w, h);
	free(p);

	uint8_t *rgba = malloc(np * 4);
	assert_non_null(rgba);
	for (size_t i = 0; i < np; i++) {
		memcpy(rgba + 4 * i, rgb + 3 * i, 3);
		rgba[4 * i + 3] = (uint8_t)(i * 13); /* transparency is not composited */
	}
	p = png(rgba, np * 4, w, h, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, NULL, &n);
	check_png(im, p, n, rgb, w, h);
	free(p);
	free(rgba);

	uint16_t *rgb16 = malloc(np * 3 * 2);
	assert_non_null(rgb16);
	for (size_t i = 0; i < np * 3; i++)
		rgb16[i] = (uint16_t)(rgb[i] * 257);
	p = png(rgb16, np * 6, w, h, SPNG_COLOR_TYPE_TRUECOLOR, 16, NULL, &n);
	check_png(im, p, n, rgb, w, h);
	free(p);
	free(rgb16);

	uint8_t *gray = malloc(np * 2), *grgb = malloc(np * 3);
	assert_non_null(gray);
	assert_non_null(grgb);
	for (size_t i = 0; i < np; i++)
		gray[i] = grgb[3 * i] = grgb[3 * i + 1] = grgb[3 * i + 2] = rgb[3 * i];
	p = png(gray, np, w, h, SPNG_COLOR_TYPE_GRAYSCALE, 8, NULL, &n);
	check_png(im, p, n, grgb, w, h);
	free(p);
	for (size_t i = np; i-- > 0;) { /* gray + alpha */
		gray[2 * i] = grgb[3 * i];
		gray[2 * i + 1] = (uint8_t)(255 - i);
	}
	p = png(gray, np * 2, w, h, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, NULL, &n);
	check_png(im, p, n, grgb, w, h);
	free(p);

	struct spng_plte plte = {.n_entries = 16};
	for (uint32_t i = 0; i < 16; i++)
		plte.entries[i] =
			(struct spng_plte_entry){(uint8_t)(i * 16), (uint8_t)(255 - i * 9),
						 (uint8_t)(i * i), 255};
	uint8_t *idx = malloc(np), *prgb = malloc(np * 3);
	assert_non_null(idx);
	assert_non_null(prgb);
	for (size_t i = 0; i < np; i++) {
		idx[i] = (uint8_t)(rgb[3 * i] % 16);
		prgb[3 * i] = plte.entries[idx[i]].red;
		prgb[3 * i + 1] = plte.entries[idx[i]].green;
		prgb[3 * i + 2] = plte.entries[idx[i]].blue;
	}
	p = png(idx, np, w, h, SPNG_COLOR_TYPE_INDEXED, 8, &plte, &n);
	check_png(im, p, n, prgb, w, h);
	free(p);
	free(idx);
	free(prgb);
	free(gray);
	free(grgb);
	free(rgb);
	ib_image_free(im);
}

static void test_webp_decodes_lossless_exactly_and_lossy_close(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t w = 45, h = 31;
	uint8_t *rgb = pattern(w, h, 4);
	size_t n;
	uint8_t *p = webp(rgb, w, h, 1, &n);
	uint32_t dw, dh;
	uint8_t *got = decode(im, p, n, &dw, &dh);
	assert_int_equal(dw, w);
	assert_int_equal(dh, h);
	assert_memory_equal(got, rgb, (size_t)w * h * 3);
	free(got);
	free(p);

	const uint8_t teal[3] = {20, 140, 150};
	uint8_t *flat = solid(w, h, teal);
	p = webp(flat, w, h, 0, &n);
	got = decode(im, p, n, &dw, &dh);
	assert_int_equal(dw, w);
	for (size_t i = 0; i < (size_t)w * h * 3; i++)
		assert_true(abs(got[i] - flat[i]) <= 4);
	free(got);
	free(p);
	free(flat);
	free(rgb);
	ib_image_free(im);
}

static void test_png_written_reads_back(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(fx_mkdtemp(dir, sizeof dir, "ibstore-image"), 0);
	const uint32_t w = 29, h = 17;
	uint8_t *rgb = pattern(w, h, 5);
	char err[ERR_CAP] = "";
	const char *path = fx_path(dir, "x.png");
	assert_int_equal(ib_image_write_png(path, rgb, w, h, err, sizeof err), 0);
	size_t n;
	uint8_t *p = fx_read_file(path, &n);
	ib_image *im = ib_image_new();
	assert_non_null(im);
	check_png(im, p, n, rgb, w, h);
	free(p);
	assert_int_equal(ib_image_write_png(fx_path(dir, "no/such/dir.png"), rgb, w, h, err,
					    sizeof err),
			 IBSTORE_EIO);
	assert_non_null(strstr(err, "no/such/dir.png"));
	ib_image_free(im);
	free(rgb);
	assert_int_equal(fx_rmtree(dir), 0);
}

/* ---- the sample --------------------------------------------------------- */

/* One sample, failing the test on error. */
static void *sample(ib_image *im, const ibstore_image_opts *o, const uint8_t *src, size_t n,
		    uint64_t seed, uint32_t epoch, uint64_t id)
{
	void *out = malloc(ib_image_sample_size(o));
	assert_non_null(out);
	char err[ERR_CAP] = "";
	int rc = ib_image_sample(im, o, src, n, seed, epoch, id, out, err, sizeof err);
	if (rc)
		fail_msg("sample: %d %s", rc, err);
	return out;
}

static void test_a_solid_colour_stays_that_colour(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint8_t c[3] = {200, 37, 99};
	uint8_t *flat = solid(320, 240, c);
	size_t np, nj;
	uint8_t *p = png_rgb(flat, 320, 240, &np);
	uint8_t *j = jpeg(flat, 320, 240, TJPF_RGB, TJSAMP_444, 95, &nj);
	for (int mode = 0; mode < 2; mode++) {
		ibstore_image_opts o =
			opts_of(64, 48, mode ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL);
		for (uint64_t id = 0; id < 8; id++) {
			uint8_t *out = sample(im, &o, p, np, 1, 0, id);
			for (size_t i = 0; i < 64 * 48; i++)
				assert_memory_equal(out + 3 * i, c, 3);
			free(out);
			out = sample(im, &o, j, nj, 1, 0, id);
			for (size_t i = 0; i < 64 * 48 * 3; i++)
				assert_true(abs(out[i] - c[i % 3]) <= 2);
			free(out);
		}
	}
	free(j);
	free(p);
	free(flat);
	ib_image_free(im);
}

/* CHW is the transpose of HWC; float32 is (x / 255 - mean) / std of the
 * uint8 sample; sizes are W * H * 3 * (1 or 4). */
static void test_layouts_and_dtypes_are_views_of_one_sample(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t W = 40, H = 30;
	uint8_t *rgb = pattern(200, 150, 6);
	size_t n;
	uint8_t *j = jpeg_rgb(rgb, 200, 150, TJSAMP_420, &n);
	const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
	for (int mode = 0; mode < 2; mode++) {
		ibstore_image_opts o =
			opts_of(W, H, mode ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL);
		memcpy(o.mean, mean, sizeof mean);
		memcpy(o.std, std, sizeof std);
		assert_int_equal(ib_image_sample_size(&o), W * H * 3);
		uint8_t *hwc = sample(im, &o, j, n, 9, 2, 5);
		o.layout = IBSTORE_LAYOUT_CHW;
		uint8_t *chw = sample(im, &o, j, n, 9, 2, 5);
		o.dtype = IBSTORE_DTYPE_FLOAT32;
		assert_int_equal(ib_image_sample_size(&o), W * H * 3 * 4);
		float *fchw = sample(im, &o, j, n, 9, 2, 5);
		o.layout = IBSTORE_LAYOUT_HWC;
		float *fhwc = sample(im, &o, j, n, 9, 2, 5);
		for (size_t i = 0; i < (size_t)W * H; i++)
			for (int c = 0; c < 3; c++) {
				uint8_t v = hwc[3 * i + c];
				assert_int_equal(chw[c * W * H + i], v);
				float want = ((float)v / 255.0f - mean[c]) / std[c];
				assert_true(fabsf(fhwc[3 * i + c] - want) <= 1e-6f);
				assert_true(fabsf(fchw[c * W * H + i] - want) <= 1e-6f);
			}
		free(hwc);
		free(chw);
		free(fchw);
		free(fhwc);
	}
	free(j);
	free(rgb);
	ib_image_free(im);
}

static void test_same_key_same_pixels_other_key_other_crop(void **state)
{
	(void)state;
	ib_image *im = ib_image_new(), *im2 = ib_image_new();
	assert_non_null(im);
	assert_non_null(im2);
	uint8_t *rgb = pattern(160, 120, 7);
	size_t n;
	uint8_t *j = jpeg_rgb(rgb, 160, 120, TJSAMP_420, &n);
	ibstore_image_opts o = opts_of(32, 32, IBSTORE_IMAGES_TRAIN);
	size_t size = ib_image_sample_size(&o);
	uint8_t *a = sample(im, &o, j, n, 42, 3, 1000);
	uint8_t *other = sample(im, &o, j, n, 42, 3, 7); /* scratch state in between */
	uint8_t *b = sample(im2, &o, j, n, 42, 3, 1000);
	assert_memory_equal(a, b, size);
	free(other);
	int differ = 0;
	ib_box b0, b1;
	ib_image_box(&o, 160, 120, 42, 3, 1000, &b0);
	for (uint64_t id = 0; id < 16; id++) {
		ib_image_box(&o, 160, 120, 42, 3, id, &b1);
		differ += memcmp(&b0, &b1, sizeof b0) != 0;
	}
	assert_true(differ >= 15);
	ib_image_box(&o, 160, 120, 43, 3, 1000, &b1);
	assert_true(memcmp(&b0, &b1, sizeof b0) != 0);
	ib_image_box(&o, 160, 120, 42, 4, 1000, &b1);
	assert_true(memcmp(&b0, &b1, sizeof b0) != 0);
	free(a);
	free(b);
	free(j);
	free(rgb);
	ib_image_free(im);
	ib_image_free(im2);
}

static void test_uniform_stream_is_uniform_and_keyed(void **state)
{
	(void)state;
	double sum = 0, sq = 0;
	int buckets[10] = {0};
	const int n = 100000;
	for (int i = 0; i < n; i++) {
		double u =
			ib_image_uniform(5, (uint32_t)(i % 3), (uint64_t)i / 3, (uint32_t)(i % 41));
		assert_true(u >= 0.0 && u < 1.0);
		sum += u;
		sq += u * u;
		buckets[(int)(u * 10)]++;
	}
	assert_true(fabs(sum / n - 0.5) < 0.005);
	assert_true(fabs(sq / n - 1.0 / 3) < 0.005);
	for (int b = 0; b < 10; b++)
		assert_true(abs(buckets[b] - n / 10) < 600);
	double u = ib_image_uniform(1, 2, 3, 4);
	assert_true(u == ib_image_uniform(1, 2, 3, 4));
	assert_true(u != ib_image_uniform(0, 2, 3, 4));
	assert_true(u != ib_image_uniform(1, 3, 3, 4));
	assert_true(u != ib_image_uniform(1, 2, 4, 4));
	assert_true(u != ib_image_uniform(1, 2, 3, 5));
}

/* ---- crop geometry ------------------------------------------------------ */

/* torchvision.transforms.RandomResizedCrop.get_params, line for line, fed
 * the stream's uniforms in image.c's documented order (attempt i: k = 4i
 * area, 4i + 1 log-ratio, 4i + 2 top, 4i + 3 left; the flip k = 40). */
static ib_box torchvision_rrc(double width, double height, const double scale[2],
			      const double ratio[2], double flip_p, uint64_t seed, uint32_t epoch,
			      uint64_t id)
{
	ib_box b = {0};
	double area = height * width;
	double log_ratio[2] = {log(ratio[0]), log(ratio[1])};
	int found = 0;
	for (uint32_t i = 0; i < 10 && !found; i++) {
		double target_area =
			area * (scale[0] +
				(scale[1] - scale[0]) * ib_image_uniform(seed, epoch, id, 4 * i));
		double aspect_ratio =
			exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) *
						   ib_image_uniform(seed, epoch, id, 4 * i + 1));
		double w = nearbyint(sqrt(target_area * aspect_ratio));
		double h = nearbyint(sqrt(target_area / aspect_ratio));
		if (0 < w && w <= width && 0 < h && h <= height) {
			double top = floor(ib_image_uniform(seed, epoch, id, 4 * i + 2) *
					   (height - h + 1));
			double left = floor(ib_image_uniform(seed, epoch, id, 4 * i + 3) *
					    (width - w + 1));
			b = (ib_box){(uint32_t)left, (uint32_t)top, (uint32_t)w, (uint32_t)h, 0};
			found = 1;
		}
	}
	if (!found) {
		double in_ratio = width / height, w, h;
		if (in_ratio < ratio[0]) {
			w = width;
			h = nearbyint(w / ratio[0]);
		} else if (in_ratio > ratio[1]) {
			h = height;
			w = nearbyint(h * ratio[1]);
		} else {
			w = width;
			h = height;
		}
		b = (ib_box){(uint32_t)((width - w) / 2), (uint32_t)((height - h) / 2), (uint32_t)w,
			     (uint32_t)h, 0};
	}
	b.flip = ib_image_uniform(seed, epoch, id, 40) < flip_p;
	return b;
}

static void test_random_resized_crop_is_torchvisions_draw_for_draw(void **state)
{
	(void)state;
	ibstore_image_opts o = opts_of(224, 224, IBSTORE_IMAGES_TRAIN);
	const double scale[2] = {o.scale[0], o.scale[1]}, ratio[2] = {o.ratio[0], o.ratio[1]};
	const uint32_t W = 500, H = 375;
	const int n = 10000;
	double area_sum = 0, flips = 0, x_sum = 0;
	int fallbacks = 0;
	for (int i = 0; i < n; i++) {
		ib_box b, t = torchvision_rrc(W, H, scale, ratio, o.flip, 11, 4, (uint64_t)i);
		ib_image_box(&o, W, H, 11, 4, (uint64_t)i, &b);
		assert_int_equal(b.x, t.x);
		assert_int_equal(b.y, t.y);
		assert_int_equal(b.w, t.w);
		assert_int_equal(b.h, t.h);
		assert_int_equal(b.flip, t.flip);
		assert_true(b.w >= 1 && b.h >= 1 && b.x + b.w <= W && b.y + b.h <= H);
		double frac = (double)b.w * b.h / (W * H);
		/* rounding of w and h moves the area by at most about a pixel row */
		assert_true(frac >= scale[0] - 0.01 && frac <= 1.0);
		double aspect = (double)b.w / b.h;
		assert_true(aspect >= ratio[0] * 0.97 && aspect <= ratio[1] * 1.03);
		fallbacks += b.w == W && b.h == H;
		area_sum += frac;
		flips += b.flip;
		x_sum += (b.x + b.w / 2.0) / W;
	}
	/* U(0.08, 1) has mean 0.54; the attempts that do not fit (large and
	 * elongated) pull it down a little */
	double mean = area_sum / n;
	assert_true(mean > 0.40 && mean < 0.54);
	assert_true(fabs(flips / n - 0.5) < 0.02);
	assert_true(fabs(x_sum / n - 0.5) < 0.02); /* centred on average */
	assert_true(fallbacks < n / 100);
}

static void test_the_fallback_takes_the_middle_of_an_extreme_image(void **state)
{
	(void)state;
	ibstore_image_opts o = opts_of(224, 224, IBSTORE_IMAGES_TRAIN);
	const double scale[2] = {o.scale[0], o.scale[1]}, ratio[2] = {o.ratio[0], o.ratio[1]};
	for (uint64_t id = 0; id < 50; id++) {
		ib_box b, t = torchvision_rrc(2000, 10, scale, ratio, o.flip, 3, 0, id);
		ib_image_box(&o, 2000, 10, 3, 0, id, &b);
		/* no crop of at least 8% of the area fits 10 rows at ratio <= 4/3 */
		assert_int_equal(b.h, 10);
		assert_int_equal(b.w, 13); /* round(10 * 4/3) */
		assert_int_equal(b.x, (2000 - 13) / 2);
		assert_int_equal(b.y, 0);
		assert_int_equal(b.x, t.x);
		assert_int_equal(b.flip, t.flip);
		ib_image_box(&o, 10, 2000, 3, 0, id, &b); /* and tall: w / (3/4) */
		assert_int_equal(b.w, 10);
		assert_int_equal(b.h, 13);
		assert_int_equal(b.y, (2000 - 13) / 2);
	}
	/* a ratio range no image fits still gives at least a pixel */
	o.ratio[0] = o.ratio[1] = 1000.0f;
	ib_box b;
	ib_image_box(&o, 1, 50, 3, 0, 0, &b);
	assert_true(b.w == 1 && b.h == 1 && b.y == 24);
	o.ratio[0] = o.ratio[1] = 1e-3f;
	ib_image_box(&o, 50, 1, 3, 0, 0, &b);
	assert_true(b.w == 1 && b.h == 1 && b.x == 24);
}

static void test_eval_takes_the_centre_of_the_short_side_resized(void **state)
{
	(void)state;
	ibstore_image_opts o = opts_of(224, 224, IBSTORE_IMAGES_EVAL);
	ib_box b;
	/* 500 x 375 -> short side 256: the crop is 224 * 375 / 256 = 328.1 */
	ib_image_box(&o, 500, 375, 1, 0, 0, &b);
	assert_int_equal(b.w, 328);
	assert_int_equal(b.h, 328);
	assert_int_equal(b.x, 86);
	assert_int_equal(b.y, 23);
	assert_int_equal(b.flip, 0);
	o.resize_short = 224; /* the whole short side */
	ib_image_box(&o, 375, 500, 1, 0, 0, &b);
	assert_int_equal(b.w, 375);
	assert_int_equal(b.h, 375);
	assert_int_equal(b.y, 63);
	/* a crop wider than the resized image: scaled up until it fits */
	o = opts_of(400, 100, IBSTORE_IMAGES_EVAL);
	ib_image_box(&o, 300, 300, 1, 0, 0, &b);
	assert_int_equal(b.w, 300);
	assert_int_equal(b.h, 75);
	assert_int_equal(b.x, 0);
	assert_true(b.y == 112 || b.y == 113);
}

/* ---- the DCT scale and the resampler ------------------------------------ */

static void test_jpeg_is_decoded_at_the_dct_scale_that_covers_the_crop(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	uint8_t *rgb = pattern(1600, 1200, 8);
	size_t n;
	uint8_t *j = jpeg_rgb(rgb, 1600, 1200, TJSAMP_420, &n);
	uint32_t dw, dh;
	/* eval 224: the 1050-pixel crop at 1/4 is 262 >= 224; at 1/8, 131 */
	ibstore_image_opts o = opts_of(224, 224, IBSTORE_IMAGES_EVAL);
	free(sample(im, &o, j, n, 0, 0, 0));
	ib_image_last_size(im, &dw, &dh);
	assert_int_equal(dw, 400);
	assert_int_equal(dh, 300);
	/* train, the whole image: 1200 rows at 1/4 = 300 >= 224 */
	o.mode = IBSTORE_IMAGES_TRAIN;
	o.scale[0] = 1.0f;
	o.ratio[0] = o.ratio[1] = 4.0f / 3.0f;
	free(sample(im, &o, j, n, 0, 0, 0));
	ib_image_last_size(im, &dw, &dh);
	assert_int_equal(dw, 400);
	/* a crop of half the rows needs 1/2 (3/8 would do, but only the
	 * scales with fast inverse DCTs are used: 1/8, 1/4, 1/2, 1) */
	o.scale[0] = o.scale[1] = 0.25f;
	free(sample(im, &o, j, n, 0, 0, 0));
	ib_image_last_size(im, &dw, &dh);
	assert_int_equal(dw, 800);
	assert_int_equal(dh, 600);
	/* the full output size: no reduction */
	o = opts_of(1600, 1200, IBSTORE_IMAGES_EVAL);
	o.resize_short = 1200;
	free(sample(im, &o, j, n, 0, 0, 0));
	ib_image_last_size(im, &dw, &dh);
	assert_int_equal(dw, 1600);
	/* PNG and WebP have no such scale */
	uint8_t *p = png_rgb(rgb, 1600, 1200, &n);
	o = opts_of(224, 224, IBSTORE_IMAGES_EVAL);
	free(sample(im, &o, p, n, 0, 0, 0));
	ib_image_last_size(im, &dw, &dh);
	assert_int_equal(dw, 1600);
	free(p);
	free(j);
	free(rgb);
	ib_image_free(im);
}

/* A JPEG sample converts only its crop and an iMCU around it (the rows
 * above only entropy-decoded, those below too), and no pixel changes for
 * it: each train sample equals TurboJPEG's full decode at the same DCT
 * scale resampled over the same box, byte for byte, for every chroma
 * subsampling, grayscale and CMYK, at scales 1 to 1/8; and the crops did
 * leave pixels out. */
static void test_cropped_jpeg_decoding_changes_no_pixel(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t w = 1000, h = 750;
	uint8_t *rgb = pattern(w, h, 12);
	uint8_t *cmyk = malloc((size_t)w * h * 4);
	assert_non_null(cmyk);
	for (size_t i = 0; i < (size_t)w * h; i++) {
		memcpy(cmyk + 4 * i, rgb + 3 * i, 3);
		cmyk[4 * i + 3] = (uint8_t)(255 - rgb[3 * i + 1] / 2);
	}
	const int subsamps[] = {TJSAMP_420, TJSAMP_422, TJSAMP_440, TJSAMP_444, TJSAMP_GRAY, -1};
	const uint32_t sizes[] = {224, 96, 40};
	uint8_t *want = malloc(224 * 224 * 3);
	assert_non_null(want);
	float *scratch = NULL;
	size_t cap = 0, converted = 0, whole = 0;
	int denoms = 0;
	for (size_t s = 0; s < sizeof subsamps / sizeof *subsamps; s++) {
		int is_cmyk = subsamps[s] < 0;
		size_t n;
		uint8_t *j = is_cmyk ? jpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_420, 90, &n) :
				       jpeg_rgb(rgb, w, h, subsamps[s], &n);
		for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
			ibstore_image_opts o = opts_of(sizes[z], sizes[z], IBSTORE_IMAGES_TRAIN);
			for (uint64_t id = 0; id < 6; id++) {
				uint8_t *got = sample(im, &o, j, n, 7, 1, id);
				uint32_t dw, dh, crop[4];
				ib_image_last_size(im, &dw, &dh);
				ib_image_last_crop(im, crop);
				int denom = (int)((w + dw - 1) / dw);
				assert_int_equal(dw, (w + (uint32_t)denom - 1) / (uint32_t)denom);
				denoms |= denom;
				converted += (size_t)crop[2] * crop[3];
				whole += (size_t)dw * dh;
				uint8_t *full = tj_reference(j, n, is_cmyk, dw, dh);
				ib_box b;
				ib_image_box(&o, w, h, 7, 1, id, &b);
				double rx = (double)b.x / denom, ry = (double)b.y / denom;
				assert_int_equal(
					ib_image_resize(full, (size_t)dw * 3, rx, ry,
							fmin((double)b.w / denom, dw - rx),
							fmin((double)b.h / denom, dh - ry), want,
							sizes[z], sizes[z], b.flip, &scratch, &cap),
					0);
				if (memcmp(got, want, (size_t)sizes[z] * sizes[z] * 3))
					fail_msg("subsampling %d, size %u, id %u: the sample differs "
						 "from the full decode's (1/%d, crop %u,%u %ux%u)",
						 subsamps[s], sizes[z], (unsigned)id, denom, crop[0],
						 crop[1], crop[2], crop[3]);
				free(full);
				free(got);
			}
		}
		free(j);
	}
	assert_int_equal(denoms, 1 | 2 | 4 | 8);
	/* RandomResizedCrop keeps 54 % of the area on average */
	assert_true(converted < whole * 3 / 4);
	free(scratch);
	free(want);
	free(cmyk);
	free(rgb);
	ib_image_free(im);
}

/* The reduced decode is close to the full one resampled (the DCT scale
 * is a filter of its own, so not equal). */
static void test_dct_scale_changes_the_pixels_only_a_little(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	uint8_t *rgb = pattern(1600, 1200, 9);
	size_t n;
	uint8_t *j = jpeg_rgb(rgb, 1600, 1200, TJSAMP_444, &n);
	ibstore_image_opts o = opts_of(224, 224, IBSTORE_IMAGES_EVAL);
	uint8_t *fast = sample(im, &o, j, n, 0, 0, 0);
	uint32_t w, h;
	uint8_t *full = decode(im, j, n, &w, &h);
	uint8_t *ref = malloc(224 * 224 * 3);
	assert_non_null(ref);
	float *scratch = NULL;
	size_t cap = 0;
	double c = 1200.0 * 224 / 256;
	assert_int_equal(ib_image_resize(full, (size_t)w * 3, (1600 - c) / 2, (1200 - c) / 2, c, c,
					 ref, 224, 224, 0, &scratch, &cap),
			 0);
	double err = 0;
	for (size_t i = 0; i < 224 * 224 * 3; i++)
		err += abs(fast[i] - ref[i]);
	assert_true(err / (224 * 224 * 3) < 3.0);
	free(scratch);
	free(ref);
	free(full);
	free(fast);
	free(j);
	free(rgb);
	ib_image_free(im);
}

/* Values PIL 9 gives for Image.resize(BILINEAR) (which rounds its
 * fixed-point weights: within 1). */
static void test_resize_matches_pils_bilinear(void **state)
{
	(void)state;
	/* a 6 x 4 gray ramp (R = G = B) */
	uint8_t src[4][6 * 3];
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 6; x++)
			memset(&src[y][3 * x], (uint8_t)(x * 40 + y * 10), 3);
	float *scratch = NULL;
	size_t cap = 0;
	/* shrink to 3 x 2: averages of 2 x 2 blocks, triangle weights
	 * 1/8 3/8 3/8 1/8 over four pixels (renormalised at the edges) */
	uint8_t dst[2][3 * 3];
	assert_int_equal(ib_image_resize(&src[0][0], 18, 0, 0, 6, 4, &dst[0][0], 3, 2, 0, &scratch,
					 &cap),
			 0);
	static const uint8_t want_shrink[2][3] = {{36, 107, 178}, {52, 123, 194}};
	for (int y = 0; y < 2; y++)
		for (int x = 0; x < 3; x++)
			assert_true(abs(dst[y][3 * x] - want_shrink[y][x]) <= 1);
	/* enlarge 2 x 2 of it (x 0..1, y 0..1) to 4 x 4: bilinear, half-pixel centres */
	uint8_t big[4][4 * 3];
	assert_int_equal(ib_image_resize(&src[0][0], 18, 0, 0, 2, 2, &big[0][0], 4, 4, 0, &scratch,
					 &cap),
			 0);
	static const uint8_t want_big[4][4] = {{0, 10, 30, 40},
					       {3, 13, 33, 43},
					       {8, 18, 38, 48},
					       {10, 20, 40, 50}};
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 4; x++)
			assert_true(abs(big[y][3 * x] - want_big[y][x]) <= 1);
	/* flipped: columns mirrored */
	uint8_t flip[4][4 * 3];
	assert_int_equal(ib_image_resize(&src[0][0], 18, 0, 0, 2, 2, &flip[0][0], 4, 4, 1, &scratch,
					 &cap),
			 0);
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 4; x++)
			assert_memory_equal(&flip[y][3 * x], &big[y][3 * (3 - x)], 3);
	free(scratch);
}

/* ---- refused input ------------------------------------------------------ */

typedef struct bad_case {
	const char *what;
	uint8_t *p;
	size_t n;
	int code;
} bad_case;

/* Both entry points refuse it with the code and a message, and write no
 * pixels they claim. */
static void check_bad(ib_image *im, const bad_case *b, uint64_t max_pixels)
{
	char err[ERR_CAP] = "";
	uint8_t *rgb = (uint8_t *)"unchanged";
	uint32_t w = 0, h = 0;
	int rc = ib_image_decode_rgb(im, b->p, b->n, max_pixels, &rgb, &w, &h, err, sizeof err);
	if (rc != b->code)
		fail_msg("%s: decode returned %d (%s), not %d", b->what, rc, err, b->code);
	assert_null(rgb);
	assert_true(err[0] != '\0');
	ibstore_image_opts o = opts_of(16, 16, IBSTORE_IMAGES_TRAIN);
	o.max_pixels = max_pixels;
	uint8_t out[16 * 16 * 3];
	err[0] = '\0';
	rc = ib_image_sample(im, &o, b->p, b->n, 0, 0, 0, out, err, sizeof err);
	if (rc != b->code)
		fail_msg("%s: sample returned %d (%s), not %d", b->what, rc, err, b->code);
	assert_true(err[0] != '\0');
}

static void test_truncated_images_are_corrupt_at_any_cut(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t w = 96, h = 64;
	uint8_t *rgb = pattern(w, h, 10);
	size_t n[4];
	uint8_t *img[4] = {jpeg_rgb(rgb, w, h, TJSAMP_420, &n[0]), png_rgb(rgb, w, h, &n[1]),
			   webp(rgb, w, h, 0, &n[2]), webp(rgb, w, h, 1, &n[3])};
	static const char *names[4] = {"jpeg", "png", "webp", "webp lossless"};
	for (int f = 0; f < 4; f++) {
		/* every cut from just past the magic bytes to the last byte but
		 * the trailer (a PNG cut inside IEND still has all its pixels) */
		size_t end = f == 1 ? n[f] - 12 : n[f] - 1;
		for (size_t cut = 12; cut <= end; cut += cut < 200 ? 1 : 37) {
			uint8_t *p = dup(img[f], cut); /* exactly cut bytes: ASan sees overreads */
			char what[64];
			snprintf(what, sizeof what, "%s cut at %zu of %zu", names[f], cut, n[f]);
			check_bad(im, &(bad_case){what, p, cut, IBSTORE_ECORRUPT}, 1 << 20);
			free(p);
			/* and the decoder is as good as new (TurboJPEG 2.1 handles
			 * are not, after a failed header) */
			uint32_t dw, dh;
			free(decode(im, img[f], n[f], &dw, &dh));
		}
		free(img[f]);
	}
	free(rgb);
	ib_image_free(im);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The offset of a JPEG marker (FF m) after the SOI. */
static size_t find_marker(const uint8_t *p, size_t n, uint8_t m)
{
	for (size_t i = 2; i + 1 < n; i++)
		if (p[i] == 0xff && p[i + 1] == m)
			return i;
	fail_msg("marker %02x not found", m);
	return 0;
}

static void test_corrupt_foreign_and_oversized_payloads_are_refused(void **state)
{
	(void)state;
	ib_image *im = ib_image_new();
	assert_non_null(im);
	const uint32_t w = 64, h = 48;
	uint8_t *rgb = pattern(w, h, 11);
	size_t nj, np, nw;
	uint8_t *j = jpeg_rgb(rgb, w, h, TJSAMP_420, &nj);
	uint8_t *p = png_rgb(rgb, w, h, &np);
	uint8_t *wp = webp(rgb, w, h, 0, &nw);

	check_bad(im, &(bad_case){"empty", (uint8_t *)"", 0, IBSTORE_EUNSUPPORTED}, 1 << 20);
	uint8_t garbage[997];
	uint32_t s = 99;
	for (size_t i = 0; i < sizeof garbage; i++) {
		s = s * 1103515245u + 12345u;
		garbage[i] = (uint8_t)(s >> 16);
	}
	garbage[0] = 'x';
	check_bad(im, &(bad_case){"garbage", garbage, sizeof garbage, IBSTORE_EUNSUPPORTED},
		  1 << 20);
	uint8_t gif[] = "GIF89a\x10\0\x10\0\0\0\0;";
	check_bad(im, &(bad_case){"gif", gif, sizeof gif, IBSTORE_EUNSUPPORTED}, 1 << 20);
	/* the right magic, then garbage */
	garbage[0] = 0xff, garbage[1] = 0xd8, garbage[2] = 0xff;
	check_bad(im,
		  &(bad_case){"jpeg magic + garbage", garbage, sizeof garbage, IBSTORE_ECORRUPT},
		  1 << 20);
	memcpy(garbage, p, 8);
	check_bad(im, &(bad_case){"png magic + garbage", garbage, sizeof garbage, IBSTORE_ECORRUPT},
		  1 << 20);
	memcpy(garbage, "RIFF\xe5\x03\0\0WEBP", 12);
	check_bad(im,
		  &(bad_case){"webp magic + garbage", garbage, sizeof garbage, IBSTORE_ECORRUPT},
		  1 << 20);

	/* a PNG data byte changed: its chunk's CRC no longer matches */
	uint8_t *c = dup(p, np);
	c[np / 2] ^= 0x40;
	check_bad(im, &(bad_case){"png with a changed byte", c, np, IBSTORE_ECORRUPT}, 1 << 20);
	free(c);
	/* a JPEG whose entropy-coded data ends early (an EOI after a few bytes
	 * of its scan): libjpeg would fill the rest with gray */
	c = dup(j, nj);
	size_t sos = find_marker(c, nj, 0xda);
	c[sos + 40] = 0xff;
	c[sos + 41] = 0xd9;
	check_bad(im, &(bad_case){"jpeg ended early", c, sos + 42, IBSTORE_ECORRUPT}, 1 << 20);
	free(c);
	/* a JPEG whose first component names a quantisation table it lacks
	 * (SOF0: FF C0, length, precision, height, width, count, then id,
	 * sampling, table of each component) */
	c = dup(j, nj);
	size_t sof = find_marker(c, nj, 0xc0);
	c[sof + 12] = 3;
	check_bad(im, &(bad_case){"jpeg without its quantisation table", c, nj, IBSTORE_ECORRUPT},
		  1 << 20);
	free(c);
	/* bytes flipped anywhere: refused or decoded, never a crash */
	for (size_t i = 3; i < nj; i += 7) {
		c = dup(j, nj);
		c[i] ^= (uint8_t)(i * 31 + 1);
		uint8_t out[16 * 16 * 3];
		char err[ERR_CAP];
		ibstore_image_opts o = opts_of(16, 16, IBSTORE_IMAGES_EVAL);
		int rc = ib_image_sample(im, &o, c, nj, 0, 0, i, out, err, sizeof err);
		assert_true(rc == 0 || rc == IBSTORE_ECORRUPT || rc == IBSTORE_ETOOBIG);
		free(c);
	}

	/* bombs: headers claiming huge images, with no pixel data behind
	 * them (a decode would fail as corrupt: ETOOBIG shows it never ran) */
	c = dup(p, 33); /* signature + IHDR */
	put_be32(c + 16, 100000);
	put_be32(c + 20, 100000);
	put_be32(c + 29, crc32_of(c + 12, 17));
	check_bad(im, &(bad_case){"png 100000 x 100000", c, 33, IBSTORE_ETOOBIG},
		  (uint64_t)8192 * 8192);
	free(c);
	c = dup(j, nj);
	c[sof + 5] = 0xea, c[sof + 6] = 0x60; /* height 60000 */
	c[sof + 7] = 0xea, c[sof + 8] = 0x60; /* width 60000 */
	check_bad(im, &(bad_case){"jpeg 60000 x 60000", c, sos + 20, IBSTORE_ETOOBIG},
		  (uint64_t)8192 * 8192);
	free(c);
	c = dup(wp, nw);
	/* RIFF, size, WEBP, "VP8 ", size, 3 frame-tag bytes, 9d 01 2a, w, h */
	assert_memory_equal(c + 12, "VP8 ", 4);
	c[26] = 0xff, c[27] = 0x3f, c[28] = 0xff, c[29] = 0x3f; /* 16383 x 16383 */
	check_bad(im, &(bad_case){"webp 16383 x 16383", c, 40, IBSTORE_ETOOBIG},
		  (uint64_t)8192 * 8192);
	free(c);
	/* max_pixels is inclusive */
	check_bad(im, &(bad_case){"jpeg above max_pixels", j, nj, IBSTORE_ETOOBIG},
		  (uint64_t)w * h - 1);
	char err[ERR_CAP];
	uint8_t *out = NULL;
	uint32_t ow, oh;
	assert_int_equal(ib_image_decode_rgb(im, j, nj, (uint64_t)w * h, &out, &ow, &oh, err,
					     sizeof err),
			 0);
	free(out);

	free(wp);
	free(p);
	free(j);
	free(rgb);
	ib_image_free(im);
}

/* torchvision's RandomCrop(size, padding=p) + RandomHorizontalFlip, written
 * from its definition: the image framed by p zeros, the window at (left,
 * top), mirrored. */
static void pad_window(const uint8_t *img, uint32_t w, uint32_t h, uint32_t p, uint32_t left,
		       uint32_t top, int flip, uint8_t *out)
{
	uint32_t pw = w + 2 * p, ph = h + 2 * p;
	uint8_t *padded = calloc((size_t)pw * ph * 3, 1);
	assert_non_null(padded);
	for (uint32_t y = 0; y < h; y++)
		memcpy(padded + (((size_t)y + p) * pw + p) * 3, img + (size_t)y * w * 3,
		       (size_t)w * 3);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++)
			memcpy(out + ((size_t)y * w + x) * 3,
			       padded + (((size_t)y + top) * pw + left + (flip ? w - 1 - x : x)) * 3,
			       3);
	free(padded);
}

/* With pad, a train sample of an image already at the output size is a
 * window of the zero-framed image (flipped or not) and nothing else; the
 * window's offsets are uniform over 0..2 pad and the flip is a fair coin;
 * the same key gives the same window. */
static void test_pad_crop_is_a_window_of_the_framed_image(void **state)
{
	(void)state;
	enum { W = 28, H = 28, P = 2, SPAN = 2 * P + 1, N = 3000 };
	ib_image *im = ib_image_new();
	assert_non_null(im);
	uint8_t *img = pattern(W, H, 7);
	for (size_t i = 0; i < (size_t)W * H * 3; i++)
		img[i] |= 1; /* no pixel of the image is black: padding is told apart */
	size_t len;
	uint8_t *p = png_rgb(img, W, H, &len);
	ibstore_image_opts o = opts_of(W, H, IBSTORE_IMAGES_TRAIN);
	o.pad = P;
	uint8_t want[W * H * 3];
	unsigned left_seen[SPAN] = {0}, top_seen[SPAN] = {0}, flips = 0;
	for (uint64_t id = 0; id < N; id++) {
		uint8_t *got = sample(im, &o, p, len, 11, 3, id);
		int found = 0;
		for (uint32_t t = 0; t < SPAN && !found; t++)
			for (uint32_t l = 0; l < SPAN && !found; l++)
				for (int f = 0; f < 2 && !found; f++) {
					pad_window(img, W, H, P, l, t, f, want);
					if (memcmp(got, want, sizeof want) == 0) {
						found = 1;
						left_seen[l]++;
						top_seen[t]++;
						flips += (unsigned)f;
					}
				}
		if (!found)
			fail_msg("sample %" PRIu64 " is no window of the padded image", id);
		uint8_t *again = sample(im, &o, p, len, 11, 3, id);
		assert_memory_equal(got, again, sizeof want);
		free(again);
		free(got);
	}
	/* each offset near N / SPAN = 600 (sd ~22), the flip near N / 2 */
	for (int k = 0; k < SPAN; k++) {
		if (left_seen[k] < 480 || left_seen[k] > 720 || top_seen[k] < 480 ||
		    top_seen[k] > 720)
			fail_msg("offset %d drawn %u (left) / %u (top) times of %d", k, left_seen[k],
				 top_seen[k], N);
	}
	assert_in_range(flips, N / 2 - 150, N / 2 + 150);
	/* flip 0: never mirrored (the unmirrored window is found first only
	 * when it matches; a symmetric window would count as unflipped) */
	o.flip = 0;
	for (uint64_t id = 0; id < 50; id++) {
		uint8_t *got = sample(im, &o, p, len, 11, 3, id);
		int found = 0;
		for (uint32_t t = 0; t < SPAN && !found; t++)
			for (uint32_t l = 0; l < SPAN && !found; l++) {
				pad_window(img, W, H, P, l, t, 0, want);
				found = memcmp(got, want, sizeof want) == 0;
			}
		assert_true(found);
		free(got);
	}
	/* a larger image is resized to the output first: the centre window
	 * (offset pad, pad) of a solid colour is that colour; the frame black */
	const uint8_t c[3] = {90, 180, 45};
	uint8_t *big = solid(100, 60, c);
	size_t blen;
	uint8_t *bp = png_rgb(big, 100, 60, &blen);
	o.flip = 0.5f;
	unsigned black_rows = 0;
	for (uint64_t id = 0; id < 200; id++) {
		uint8_t *got = sample(im, &o, bp, blen, 5, 0, id);
		for (uint32_t y = 0; y < H; y++) {
			int row_black = 1;
			for (uint32_t x = 0; x < W; x++) {
				const uint8_t *px = got + ((size_t)y * W + x) * 3;
				int black = px[0] == 0 && px[1] == 0 && px[2] == 0;
				if (!black && memcmp(px, c, 3) != 0)
					fail_msg("pixel %u,%u of sample %" PRIu64 ": %u %u %u", x, y, id,
						 px[0], px[1], px[2]);
				row_black &= black;
			}
			black_rows += (unsigned)row_black;
		}
		free(got);
	}
	/* the mean frame height is E|top - P| over 0..2P: 6/5 rows of 28 */
	assert_in_range(black_rows, 200 * 6 / 5 - 60, 200 * 6 / 5 + 60);
	free(bp);
	free(big);
	free(p);
	free(img);
	ib_image_free(im);
}

static void expect_invalid(const ibstore_image_opts *o, const char *field)
{
	char err[ERR_CAP] = "";
	assert_int_equal(ib_image_opts_check(o, err, sizeof err), IBSTORE_EINVAL);
	if (!strstr(err, field))
		fail_msg("message \"%s\" does not name %s", err, field);
}

static void test_options_are_checked_field_by_field(void **state)
{
	(void)state;
	ibstore_image_opts o;
	assert_int_equal(ibstore_image_opts_init(&o), 0);
	assert_int_equal(o.size, sizeof o);
	assert_int_equal(o.layout, IBSTORE_LAYOUT_HWC);
	assert_int_equal(o.dtype, IBSTORE_DTYPE_UINT8);
	assert_int_equal(o.mode, IBSTORE_IMAGES_EVAL);
	assert_true(o.scale[0] == 0.08f && o.scale[1] == 1.0f);
	assert_true(o.ratio[0] == 0.75f && o.ratio[1] == 4.0f / 3.0f);
	assert_true(o.flip == 0.5f && o.std[2] == 1.0f && o.mean[0] == 0.0f);
	assert_int_equal(o.max_pixels, (uint64_t)8192 * 8192);
	assert_int_equal(o.width, 0);
	expect_invalid(&o, "width");

	ibstore_image_opts good = opts_of(224, 224, IBSTORE_IMAGES_TRAIN);
	char err[ERR_CAP];
	assert_int_equal(ib_image_opts_check(&good, err, sizeof err), 0);
	o = good, o.height = 8193;
	expect_invalid(&o, "height");
	o = good, o.layout = (ibstore_layout)2;
	expect_invalid(&o, "layout");
	o = good, o.dtype = (ibstore_dtype)5;
	expect_invalid(&o, "dtype");
	o = good, o.mode = (ibstore_images_mode)-1;
	expect_invalid(&o, "mode");
	o = good, o.scale[0] = 0;
	expect_invalid(&o, "scale");
	o = good, o.scale[0] = 0.5f, o.scale[1] = 0.4f;
	expect_invalid(&o, "scale");
	o = good, o.scale[1] = 1.5f;
	expect_invalid(&o, "scale");
	o = good, o.ratio[0] = -1;
	expect_invalid(&o, "ratio");
	o = good, o.ratio[1] = NAN;
	expect_invalid(&o, "ratio");
	o = good, o.flip = 1.01f;
	expect_invalid(&o, "flip");
	o = good, o.std[1] = 0;
	expect_invalid(&o, "std[1]");
	o = good, o.mean[2] = INFINITY;
	expect_invalid(&o, "mean[2]");
	o = good, o.max_pixels = 0;
	expect_invalid(&o, "max_pixels");
	o = good, o.pad = 8193;
	expect_invalid(&o, "pad");
	o = good, o.mode = IBSTORE_IMAGES_EVAL, o.pad = 4;
	expect_invalid(&o, "pad");
	assert_int_equal(o.size, sizeof o); /* the struct's size covers pad */
	o = good, o.scale[0] = o.scale[1] = 1, o.flip = 1, o.width = o.height = 8192;
	assert_int_equal(ib_image_opts_check(&o, err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats_are_known_by_their_magic_bytes),
		cmocka_unit_test(test_enum_names_round_trip),
		cmocka_unit_test(test_jpeg_pixels_are_libjpeg_turbos_own),
		cmocka_unit_test(test_cmyk_jpeg_converts_as_adobe_inverted),
		cmocka_unit_test(test_png_decodes_to_its_source_pixels),
		cmocka_unit_test(test_webp_decodes_lossless_exactly_and_lossy_close),
		cmocka_unit_test(test_png_written_reads_back),
		cmocka_unit_test(test_a_solid_colour_stays_that_colour),
		cmocka_unit_test(test_layouts_and_dtypes_are_views_of_one_sample),
		cmocka_unit_test(test_same_key_same_pixels_other_key_other_crop),
		cmocka_unit_test(test_uniform_stream_is_uniform_and_keyed),
		cmocka_unit_test(test_random_resized_crop_is_torchvisions_draw_for_draw),
		cmocka_unit_test(test_the_fallback_takes_the_middle_of_an_extreme_image),
		cmocka_unit_test(test_eval_takes_the_centre_of_the_short_side_resized),
		cmocka_unit_test(test_jpeg_is_decoded_at_the_dct_scale_that_covers_the_crop),
		cmocka_unit_test(test_cropped_jpeg_decoding_changes_no_pixel),
		cmocka_unit_test(test_dct_scale_changes_the_pixels_only_a_little),
		cmocka_unit_test(test_resize_matches_pils_bilinear),
		cmocka_unit_test(test_truncated_images_are_corrupt_at_any_cut),
		cmocka_unit_test(test_corrupt_foreign_and_oversized_payloads_are_refused),
		cmocka_unit_test(test_pad_crop_is_a_window_of_the_framed_image),
		cmocka_unit_test(test_options_are_checked_field_by_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
