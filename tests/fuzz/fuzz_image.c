/*
 * fuzz_image.c — the image stage of one sample (src/image.c,
 * src/image_resize.c) on hostile payloads: ib_image_sample in the mode,
 * layout, dtype and (small) output size the first bytes choose, then
 * ib_image_decode_rgb, both under a max_pixels small enough that no input
 * can make the decoders allocate much.  A failure must come with a message;
 * a success must have written a whole sample (ASan sees the rest).
 * Input: flags (bit 0: train, bit 1: CHW, bit 2: float32, bits 3..7: output
 * width - 1), output height - 1 (low 5 bits), the payload (the rest).
 *
 * Seeds (IBSTORE_FUZZ_WRITE_SEEDS): small JPEG (4:2:0, 4:4:4 progressive,
 * gray, CMYK), PNG (RGB, palette, 16-bit gray, RGBA) and WebP (lossy,
 * lossless) images made here with the codecs' own encoders.
 */
#include <spng.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include "fuzz_common.h"
#include "image.h"

#define MAX_PIXELS ((uint64_t)4096 * 4096)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	uint8_t flags = fz_u8(&in), height = fz_u8(&in);
	size_t n;
	const uint8_t *payload = fz_take(&in, in.n, &n);

	ib_image *im = ib_image_new();
	if (!im)
		abort();
	ibstore_image_opts o;
	ibstore_image_opts_init(&o);
	o.width = 1u + (flags >> 3);
	o.height = 1u + (height & 31);
	o.mode = flags & 1 ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL;
	o.layout = flags & 2 ? IBSTORE_LAYOUT_CHW : IBSTORE_LAYOUT_HWC;
	o.dtype = flags & 4 ? IBSTORE_DTYPE_FLOAT32 : IBSTORE_DTYPE_UINT8;
	o.max_pixels = MAX_PIXELS;
	char err[512] = "";
	if (ib_image_opts_check(&o, err, sizeof err))
		abort();
	size_t out_size = ib_image_sample_size(&o);
	uint8_t *out = malloc(out_size);
	if (!out)
		abort();
	/* exactly n bytes of payload, so that ASan sees a read past its end */
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		abort();
	memcpy(p, payload, n);

	int rc = ib_image_sample(im, &o, p, n, 7, height >> 5, flags, out, err, sizeof err);
	if (rc && !err[0])
		abort();
	if (!rc) { /* every byte written: reading them all is defined */
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < out_size; i++)
			sink ^= out[i];
		(void)sink;
	}
	uint8_t *rgb = NULL;
	uint32_t w = 0, h = 0;
	err[0] = '\0';
	rc = ib_image_decode_rgb(im, p, n, MAX_PIXELS, &rgb, &w, &h, err, sizeof err);
	if (rc ? !err[0] || rgb : !rgb || (uint64_t)w * h > MAX_PIXELS)
		abort();
	free(rgb);
	free(p);
	free(out);
	ib_image_free(im);
	return 0;
}

/* ---- seeds --------------------------------------------------------------- */

static void seed(const char *dir, const char *name, uint8_t flags, uint8_t height, const void *img,
		 size_t len)
{
	uint8_t *buf = malloc(len + 2);
	if (!buf)
		abort();
	buf[0] = flags;
	buf[1] = height;
	memcpy(buf + 2, img, len);
	fz_write_seed(dir, name, buf, len + 2);
	free(buf);
}

static void pattern(uint8_t *p, size_t npix, int channels)
{
	for (size_t i = 0; i < npix * (size_t)channels; i++)
		p[i] = (uint8_t)(i * 37 + (i / 7) * 11);
}

static void jpeg_seed(const char *dir, const char *name, uint8_t flags, int w, int h, int pf,
		      int subsamp, int tjflags)
{
	uint8_t px[64 * 64 * 4];
	pattern(px, (size_t)w * h, tjPixelSize[pf]);
	tjhandle tj = tjInitCompress();
	unsigned char *jpg = NULL;
	unsigned long len = 0;
	if (!tj || tjCompress2(tj, px, w, 0, h, pf, &jpg, &len, subsamp, 85, tjflags))
		abort();
	seed(dir, name, flags, 7, jpg, len);
	tjFree(jpg);
	tjDestroy(tj);
}

static void png_seed(const char *dir, const char *name, uint8_t flags, uint32_t w, uint32_t h,
		     uint8_t color_type, uint8_t depth)
{
	static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
	size_t len = (size_t)w * h * (size_t)channels[color_type] * (depth / 8);
	uint8_t px[64 * 64 * 8];
	pattern(px, len, 1);
	spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	struct spng_ihdr ihdr = {.width = w,
				 .height = h,
				 .bit_depth = depth,
				 .color_type = color_type};
	struct spng_plte plte = {.n_entries = 256};
	for (int i = 0; i < 256; i++)
		plte.entries[i] = (struct spng_plte_entry){(uint8_t)i, (uint8_t)(255 - i),
							   (uint8_t)(i * 3), 255};
	if (!ctx || spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) || spng_set_ihdr(ctx, &ihdr) ||
	    (color_type == SPNG_COLOR_TYPE_INDEXED && spng_set_plte(ctx, &plte)) ||
	    spng_encode_image(ctx, px, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE))
		abort();
	int err = 0;
	size_t n = 0;
	uint8_t *png = spng_get_png_buffer(ctx, &n, &err);
	if (!png || err)
		abort();
	seed(dir, name, flags, 5, png, n);
	free(png);
	spng_ctx_free(ctx);
}

static void webp_seed(const char *dir, const char *name, uint8_t flags, int w, int h, int lossless)
{
	uint8_t px[64 * 64 * 3];
	pattern(px, (size_t)w * h, 3);
	uint8_t *out = NULL;
	size_t len = lossless ? WebPEncodeLosslessRGB(px, w, h, w * 3, &out) :
				WebPEncodeRGB(px, w, h, w * 3, 80, &out);
	if (!len)
		abort();
	seed(dir, name, flags, 9, out, len);
	WebPFree(out);
}

static void write_seeds(const char *dir)
{
	/* flags: train 1, chw 2, float32 4, (width - 1) << 3 */
	jpeg_seed(dir, "jpeg-420", 1 | 7 << 3, 32, 24, TJPF_RGB, TJSAMP_420, 0);
	jpeg_seed(dir, "jpeg-444-progressive", 2 | 15 << 3, 24, 16, TJPF_RGB, TJSAMP_444,
		  TJFLAG_PROGRESSIVE);
	jpeg_seed(dir, "jpeg-gray", 4 | 3 << 3, 16, 16, TJPF_GRAY, TJSAMP_GRAY, 0);
	jpeg_seed(dir, "jpeg-cmyk", 1 | 5 << 3, 16, 8, TJPF_CMYK, TJSAMP_420, 0);
	png_seed(dir, "png-rgb", 0 | 9 << 3, 16, 12, SPNG_COLOR_TYPE_TRUECOLOR, 8);
	png_seed(dir, "png-palette", 1 | 6 << 3, 8, 8, SPNG_COLOR_TYPE_INDEXED, 8);
	png_seed(dir, "png-gray16", 6 | 2 << 3, 8, 6, SPNG_COLOR_TYPE_GRAYSCALE, 16);
	png_seed(dir, "png-rgba", 1 | 11 << 3, 8, 8, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8);
	webp_seed(dir, "webp-lossy", 1 | 7 << 3, 16, 16, 0);
	webp_seed(dir, "webp-lossless", 2 | 4 << 3, 12, 10, 1);
}

FZ_SEEDS_FROM(write_seeds)
