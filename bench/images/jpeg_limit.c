/*
 * jpeg_limit.c — the decode limit of one core for the image-stage benchmark
 * (bench/images/run): the JPEG samples of a dataset, read into memory once,
 * then per round
 *
 *   limit  a loop of libjpeg-turbo's tjDecompress2 alone, each sample at the
 *          DCT scale the image stage picks for it (the stage's own decoded
 *          size, learnt from one ib_image_sample call per sample first);
 *   crop   a loop of libjpeg-turbo's libjpeg API decoding, at that scale,
 *          only the rows and columns the stage converts for the sample
 *          (ib_image_last_crop: partial decoding, jpeg_crop_scanline and
 *          jpeg_skip_scanlines, the rest of the scan skipped), no resize:
 *          the decode work the stage itself does;
 *   stage  a loop of ib_image_sample (decode + crop + resize + flip, or the
 *          eval path) over the same bytes, one thread, no loader.
 *
 * The rounds interleave the three loops.  Prints one JSON object: images/s
 * of each, median and all rounds, and the stage's ratio to each.
 *
 * usage: bench_jpeg_limit DATASET SIZE [train|eval] [ROUNDS] [SEED] [EPOCH]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <time.h>
#include <jpeglib.h>
#include <turbojpeg.h>

#include "ibstore.h"
#include "image.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double m[99];
	memcpy(m, v, (size_t)n * sizeof *m);
	qsort(m, (size_t)n, sizeof *m, cmp_double);
	return m[n / 2];
}

static void print_rounds(const char *key, const double *v, int n)
{
	printf(",\"%s\":[", key);
	for (int r = 0; r < n; r++)
		printf("%s%.1f", r ? "," : "", v[r]);
	printf("]");
}

typedef struct sample {
	uint8_t *data;
	size_t n;
	uint64_t id;
	uint32_t dw, dh;  /* the stage's decoded size */
	uint32_t crop[4]; /* and the pixels it converted */
	int denom;
} sample;

typedef struct bench_err {
	struct jpeg_error_mgr pub;
	jmp_buf env;
} bench_err;

static void bench_error_exit(j_common_ptr c)
{
	longjmp(((bench_err *)c->err)->env, 1);
}

/* The crop loop's decode of one sample: 0, or -1 on a libjpeg error. */
static int crop_decode(struct jpeg_decompress_struct *d, bench_err *e, const sample *x,
		       uint8_t *pix)
{
	if (setjmp(e->env)) {
		jpeg_abort_decompress(d);
		return -1;
	}
	jpeg_mem_src(d, x->data, (unsigned long)x->n);
	jpeg_read_header(d, TRUE);
	d->scale_num = 1;
	d->scale_denom = (unsigned)x->denom;
	d->out_color_space = JCS_RGB;
	jpeg_start_decompress(d);
	JDIMENSION cx = x->crop[0], cw = x->crop[2];
	if (cw < d->output_width)
		jpeg_crop_scanline(d, &cx, &cw);
	if (x->crop[1])
		jpeg_skip_scanlines(d, x->crop[1]);
	while (d->output_scanline < x->crop[1] + x->crop[3]) {
		JSAMPROW row = pix;
		jpeg_read_scanlines(d, &row, 1);
	}
	if (d->output_scanline < d->output_height)
		jpeg_skip_scanlines(d, d->output_height - d->output_scanline);
	jpeg_finish_decompress(d);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_jpeg_limit DATASET SIZE [train|eval] [ROUNDS] [SEED] "
				"[EPOCH]\n");
		return 2;
	}
	uint32_t size = (uint32_t)strtoul(argv[2], NULL, 10);
	int train = argc > 3 && strcmp(argv[3], "train") == 0;
	int rounds = argc > 4 ? atoi(argv[4]) : 3;
	uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
	uint32_t epoch = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0;
	if (!size || rounds < 1 || rounds > 99)
		return 2;

	ibstore_dataset *ds;
	if (ibstore_dataset_open(argv[1], &ds)) {
		fprintf(stderr, "%s: %s\n", argv[1], ibstore_dataset_errmsg(ds));
		return 1;
	}
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);
	sample *s = calloc(info.samples, sizeof *s);
	ibstore_image_opts o;
	ibstore_image_opts_init(&o);
	o.width = o.height = size;
	o.mode = train ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL;
	ib_image *im = ib_image_new();
	tjhandle tj = tjInitDecompress();
	uint8_t *out = malloc(ib_image_sample_size(&o)), *pix = NULL;
	size_t pix_cap = 0, n = 0;
	char err[256];
	for (uint64_t id = 0; id < info.samples; id++) {
		ibstore_location loc;
		if (ibstore_dataset_locate(ds, id, &loc))
			return 1;
		sample *x = &s[n];
		x->data = malloc(loc.size ? loc.size : 1);
		if (ibstore_dataset_read(ds, id, x->data, loc.size, &x->n, NULL))
			return 1;
		if (ib_image_sniff(x->data, x->n) != IB_IMG_JPEG ||
		    ib_image_sample(im, &o, x->data, x->n, seed, epoch, id, out, err, sizeof err)) {
			free(x->data);
			continue; /* JPEGs the stage decodes only */
		}
		x->id = id;
		ib_image_last_size(im, &x->dw, &x->dh);
		ib_image_last_crop(im, x->crop);
		int fw, fh, ss, cs;
		if (tjDecompressHeader3(tj, x->data, (unsigned long)x->n, &fw, &fh, &ss, &cs))
			return 1;
		/* the scale whose size, rounded up as libjpeg does, is the stage's */
		for (x->denom = 8; x->denom > 1; x->denom /= 2)
			if (((uint32_t)fw + (uint32_t)x->denom - 1) / (uint32_t)x->denom == x->dw)
				break;
		if ((size_t)x->dw * x->dh * 3 > pix_cap) {
			pix_cap = (size_t)x->dw * x->dh * 3;
			pix = realloc(pix, pix_cap);
		}
		n++;
	}
	struct jpeg_decompress_struct d;
	bench_err e;
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = bench_error_exit;
	jpeg_create_decompress(&d);
	double *limit = calloc((size_t)rounds, sizeof *limit), *stage = calloc((size_t)rounds, 8);
	double *crop = calloc((size_t)rounds, sizeof *crop);
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		for (size_t i = 0; i < n; i++)
			if (tjDecompress2(tj, s[i].data, (unsigned long)s[i].n, pix, (int)s[i].dw, 0,
					  (int)s[i].dh, TJPF_RGB, 0))
				return 1;
		double t1 = now();
		for (size_t i = 0; i < n; i++)
			if (crop_decode(&d, &e, &s[i], pix))
				return 1;
		double t2 = now();
		for (size_t i = 0; i < n; i++)
			if (ib_image_sample(im, &o, s[i].data, s[i].n, seed, epoch, s[i].id, out, err,
					    sizeof err))
				return 1;
		double t3 = now();
		limit[r] = (double)n / (t1 - t0);
		crop[r] = (double)n / (t2 - t1);
		stage[r] = (double)n / (t3 - t2);
	}
	double ml = median(limit, rounds), mc = median(crop, rounds), ms = median(stage, rounds);
	printf("{\"images\":%zu,\"size\":%u,\"mode\":\"%s\",\"limit_per_s\":%.1f,"
	       "\"crop_per_s\":%.1f,\"stage_per_s\":%.1f,\"ratio\":%.3f,\"crop_ratio\":%.3f",
	       n, size, train ? "train" : "eval", ml, mc, ms, ms / ml, ms / mc);
	print_rounds("limit_rounds", limit, rounds);
	print_rounds("crop_rounds", crop, rounds);
	print_rounds("stage_rounds", stage, rounds);
	printf("}\n");
	jpeg_destroy_decompress(&d);
	free(crop);
	for (size_t i = 0; i < n; i++)
		free(s[i].data);
	free(s);
	free(out);
	free(pix);
	free(limit);
	free(stage);
	tjDestroy(tj);
	ib_image_free(im);
	ibstore_dataset_close(ds);
	return 0;
}
