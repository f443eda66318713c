/*
 * jpeg_limit.c — the decode limit of one core for the image-stage benchmark
 * (bench/images/run): the JPEG samples of a dataset, read into memory once,
 * then per round
 *
 *   limit  a loop of libjpeg-turbo's tjDecompress2 alone, each sample at the
 *          DCT scale the image stage picks for it (the stage's own decoded
 *          size, learnt from one ib_image_sample call per sample first);
 *   stage  a loop of ib_image_sample (decode + crop + resize + flip, or the
 *          eval path) over the same bytes, one thread, no loader.
 *
 * Prints one JSON object: images/s of each, median and all rounds.
 *
 * usage: bench_jpeg_limit DATASET SIZE [train|eval] [ROUNDS] [SEED] [EPOCH]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

typedef struct sample {
	uint8_t *data;
	size_t n;
	uint64_t id;
	uint32_t dw, dh; /* the stage's decoded size */
} sample;

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
		if ((size_t)x->dw * x->dh * 3 > pix_cap) {
			pix_cap = (size_t)x->dw * x->dh * 3;
			pix = realloc(pix, pix_cap);
		}
		n++;
	}
	tjhandle tj = tjInitDecompress();
	double *limit = calloc((size_t)rounds, sizeof *limit), *stage = calloc((size_t)rounds, 8);
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		for (size_t i = 0; i < n; i++)
			if (tjDecompress2(tj, s[i].data, (unsigned long)s[i].n, pix, (int)s[i].dw, 0,
					  (int)s[i].dh, TJPF_RGB, 0))
				return 1;
		double t1 = now();
		for (size_t i = 0; i < n; i++)
			if (ib_image_sample(im, &o, s[i].data, s[i].n, seed, epoch, s[i].id, out, err,
					    sizeof err))
				return 1;
		double t2 = now();
		limit[r] = (double)n / (t1 - t0);
		stage[r] = (double)n / (t2 - t1);
	}
	double ml[99], ms[99];
	memcpy(ml, limit, (size_t)rounds * sizeof *ml);
	memcpy(ms, stage, (size_t)rounds * sizeof *ms);
	qsort(ml, (size_t)rounds, sizeof *ml, cmp_double);
	qsort(ms, (size_t)rounds, sizeof *ms, cmp_double);
	printf("{\"images\":%zu,\"size\":%u,\"mode\":\"%s\",\"limit_per_s\":%.1f,"
	       "\"stage_per_s\":%.1f,\"ratio\":%.3f,\"limit_rounds\":[",
	       n, size, train ? "train" : "eval", ml[rounds / 2], ms[rounds / 2],
	       ms[rounds / 2] / ml[rounds / 2]);
	for (int r = 0; r < rounds; r++)
		printf("%s%.1f", r ? "," : "", limit[r]);
	printf("],\"stage_rounds\":[");
	for (int r = 0; r < rounds; r++)
		printf("%s%.1f", r ? "," : "", stage[r]);
	printf("]}\n");
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
