/*
 * test_loader_images.c — the loader's image stage: every emitted sample
 * equals ibstore_image_sample of its payload for its (seed, epoch, id); the
 * batch's shape and dtype; the same pixels with any thread count, after a
 * resume and at any world size; pruned samples are not decoded; broken,
 * foreign and oversized images follow the fail and skip policies with the
 * sample named, never a partial tensor.
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
#include <turbojpeg.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"

#define N 96
#define BATCH 8
#define EPOCHS 3
#define OUT 24

/* Sample kinds by id: most are JPEGs of varied sizes; a few are broken. */
#define TRUNCATED_ID 13 /* a JPEG cut in half */
#define GARBAGE_ID 40   /* not an image */
#define BOMB_ID 77      /* a JPEG larger than the test's max_pixels */

typedef struct fixture {
	char dir[64];
	char ds[128];
	char good[128]; /* the same dataset without its broken samples */
	int n;
} fixture;

/* A JPEG of sample i: a smooth pattern of its own, w x h by i. */
static size_t jpeg_of(uint64_t i, uint32_t w, uint32_t h, uint8_t *buf, size_t cap)
{
	uint8_t *rgb = malloc((size_t)w * h * 3);
	assert_non_null(rgb);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = rgb + ((size_t)y * w + x) * 3;
			p[0] = (uint8_t)(x * 255 / w + i * 17);
			p[1] = (uint8_t)(y * 255 / h + i * 31);
			p[2] = (uint8_t)((x ^ y) + i * 7);
		}
	tjhandle tj = tjInitCompress();
	assert_non_null(tj);
	unsigned char *jpg = NULL;
	unsigned long len = 0;
	assert_int_equal(tjCompress2(tj, rgb, (int)w, 0, (int)h, TJPF_RGB, &jpg, &len, TJSAMP_420,
				     90, 0),
			 0);
	assert_true(len <= cap);
	memcpy(buf, jpg, len);
	tjFree(jpg);
	tjDestroy(tj);
	free(rgb);
	return len;
}

static size_t payload_of(uint64_t i, uint8_t *buf, int broken)
{
	if (broken && i == GARBAGE_ID) {
		memcpy(buf, "this is no image at all", 23);
		return 23;
	}
	if (broken && i == BOMB_ID)
		return jpeg_of(i, 640, 480, buf, 1 << 20);
	size_t len = jpeg_of(i, 40 + (uint32_t)(i * 7 % 60), 30 + (uint32_t)(i * 11 % 50), buf,
			     1 << 20);
	return broken && i == TRUNCATED_ID ? len / 2 : len;
}

static size_t payload_broken(uint64_t i, uint8_t *buf)
{
	return payload_of(i, buf, 1);
}

static size_t payload_good(uint64_t i, uint8_t *buf)
{
	return payload_of(i, buf, 0);
}

static int32_t label(uint64_t i)
{
	return (int32_t)(i % 5);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-limg"))
		return -1;
	snprintf(f->ds, sizeof f->ds, "%s/broken.ibs", f->dir);
	snprintf(f->good, sizeof f->good, "%s/good.ibs", f->dir);
	fx_make_dataset(f->ds, &(fx_dataset){.samples = N, .max_len = 1 << 20,
					     .payload = payload_broken, .label = label});
	fx_make_dataset(f->good, &(fx_dataset){.samples = N, .max_len = 1 << 20,
					       .payload = payload_good, .label = label});
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	int rc = fx_rmtree(f->dir);
	free(f);
	return rc;
}

static ibstore_image_opts image_opts(int train, ibstore_dtype dtype, ibstore_layout layout)
{
	ibstore_image_opts o;
	ibstore_image_opts_init(&o);
	o.width = OUT;
	o.height = OUT;
	o.mode = train ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL;
	o.dtype = dtype;
	o.layout = layout;
	o.max_pixels = 400 * 400; /* the bomb sample has 640 x 480 */
	if (dtype == IBSTORE_DTYPE_FLOAT32) {
		for (int c = 0; c < 3; c++) {
			o.mean[c] = 0.5f;
			o.std[c] = 0.25f;
		}
	}
	return o;
}

typedef struct stream {
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_loader *l;
} stream;

static void open_stream(fixture *f, const char *ds_path, stream *s, uint32_t rank,
			uint32_t world, const ibstore_image_opts *img, uint32_t threads,
			ibstore_corrupt_policy corrupt)
{
	char run[160];
	snprintf(run, sizeof run, "%s/run-%d", f->dir, f->n++);
	assert_int_equal(ibstore_dataset_open(ds_path, &s->ds), 0);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	ro.prune.seed = 5;
	ro.batch_size = BATCH;
	ro.rank = rank;
	ro.world = world;
	assert_int_equal(ibstore_run_open(run, &ro, &s->run), 0);
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.threads = threads;
	lo.corrupt = corrupt;
	lo.images = img;
	int rc = ibstore_loader_open(s->ds, s->run, &lo, &s->l);
	if (rc)
		fail_msg("loader_open: %s", ibstore_loader_errmsg(s->l));
}

static void close_stream(stream *s)
{
	ibstore_loader_close(s->l);
	ibstore_run_close(s->run);
	ibstore_dataset_close(s->ds);
}

/* The sample as the tool path computes it from its stored payload. */
static void *expected(stream *s, const ibstore_image_opts *img, uint32_t epoch, uint64_t id,
		      size_t *size)
{
	static uint8_t payload[1 << 20];
	size_t n;
	assert_int_equal(ibstore_dataset_read(s->ds, id, payload, sizeof payload, &n, NULL), 0);
	void *out;
	uint32_t w, h;
	char msg[256];
	int rc = ibstore_image_sample(payload, n, img, 5, epoch, id, &out, size, &w, &h, msg,
				      sizeof msg);
	if (rc)
		fail_msg("sample %llu: %s", (unsigned long long)id, msg);
	assert_int_equal(w, OUT);
	assert_int_equal(h, OUT);
	return out;
}

/* Runs one epoch: every sample checked against ibstore_image_sample; the
 * pixels of each id recorded in pix (N x sample size) when given. */
static uint64_t check_epoch(stream *s, const ibstore_image_opts *img, uint32_t epoch,
			    uint8_t *pix, uint8_t *seen)
{
	size_t elt = img->dtype == IBSTORE_DTYPE_FLOAT32 ? 4 : 1;
	size_t ss = (size_t)OUT * OUT * 3 * elt;
	uint64_t emitted = 0;
	assert_int_equal(ibstore_loader_epoch_begin(s->l, epoch, NULL), 0);
	for (;;) {
		const ibstore_batch *b;
		int rc = ibstore_loader_next(s->l, &b);
		if (rc)
			fail_msg("next: %s", ibstore_loader_errmsg(s->l));
		if (!b)
			break;
		assert_int_equal(b->ndim, 4);
		assert_int_equal(b->shape[0], b->n);
		if (img->layout == IBSTORE_LAYOUT_CHW) {
			assert_int_equal(b->shape[1], 3);
			assert_int_equal(b->shape[3], OUT);
		} else {
			assert_int_equal(b->shape[1], OUT);
			assert_int_equal(b->shape[3], 3);
		}
		assert_int_equal(b->dtype, img->dtype);
		assert_int_equal(b->sample_size, ss);
		assert_int_equal(b->data_size, b->n * ss);
		float *losses = calloc(b->n ? b->n : 1, sizeof *losses);
		for (size_t i = 0; i < b->n; i++) {
			size_t es;
			void *want = expected(s, img, epoch, b->ids[i], &es);
			assert_int_equal(es, ss);
			assert_memory_equal(b->data + b->offsets[i], want, ss);
			free(want);
			if (pix)
				memcpy(pix + b->ids[i] * ss, b->data + b->offsets[i], ss);
			if (seen)
				seen[b->ids[i]] = 1;
			losses[i] = 0.1f + (float)(b->ids[i] % 13);
		}
		emitted += b->n;
		assert_int_equal(ibstore_loader_report(s->l, b, losses), 0);
		free(losses);
		ibstore_loader_release(s->l, b);
	}
	assert_int_equal(ibstore_loader_epoch_end(s->l), 0);
	return emitted;
}

/* Every layout and dtype, eval and train: the loader emits what the tool
 * path computes, as dense tensors of the stated shape. */
static void test_emits_the_stage(void **state)
{
	fixture *f = *state;
	const int modes[][3] = {{0, IBSTORE_DTYPE_UINT8, IBSTORE_LAYOUT_HWC},
				{1, IBSTORE_DTYPE_UINT8, IBSTORE_LAYOUT_HWC},
				{1, IBSTORE_DTYPE_FLOAT32, IBSTORE_LAYOUT_CHW},
				{0, IBSTORE_DTYPE_FLOAT32, IBSTORE_LAYOUT_HWC}};
	for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
		ibstore_image_opts img = image_opts(modes[m][0], (ibstore_dtype)modes[m][1],
						    (ibstore_layout)modes[m][2]);
		stream s;
		open_stream(f, f->good, &s, 0, 1, &img, 2, IBSTORE_CORRUPT_FAIL);
		for (uint32_t e = 0; e < EPOCHS; e++)
			check_epoch(&s, &img, e, NULL, NULL);
		close_stream(&s);
	}
}

/* Threads 1 and 3, and 2 ranks against 1: each id's pixels are the same
 * (the random stream is keyed by seed, epoch and id only); pruned samples
 * are never emitted, so never decoded. */
static void test_same_pixels_everywhere(void **state)
{
	fixture *f = *state;
	ibstore_image_opts img = image_opts(1, IBSTORE_DTYPE_UINT8, IBSTORE_LAYOUT_HWC);
	size_t ss = (size_t)OUT * OUT * 3;
	uint8_t *a = calloc(N, ss), *b = calloc(N, ss), *seen_a = calloc(N, 1),
		*seen_b = calloc(N, 1);
	stream s1, s3;
	open_stream(f, f->good, &s1, 0, 1, &img, 1, IBSTORE_CORRUPT_FAIL);
	open_stream(f, f->good, &s3, 0, 1, &img, 3, IBSTORE_CORRUPT_FAIL);
	check_epoch(&s1, &img, 0, a, seen_a);
	check_epoch(&s3, &img, 0, b, seen_b);
	assert_memory_equal(a, b, N * ss);
	assert_memory_equal(seen_a, seen_b, N);
	close_stream(&s1);
	close_stream(&s3);

	/* epoch 0 on 2 ranks: together every id once, each with the pixels
	 * of the one-rank run */
	stream r[2];
	memset(b, 0, N * ss);
	memset(seen_b, 0, N);
	uint64_t emitted = 0;
	for (uint32_t k = 0; k < 2; k++) {
		open_stream(f, f->good, &r[k], k, 2, &img, 1, IBSTORE_CORRUPT_FAIL);
		emitted += check_epoch(&r[k], &img, 0, b, seen_b);
		close_stream(&r[k]);
	}
	assert_int_equal(emitted, N); /* epoch 0 keeps every sample; N divides by 2 */
	assert_memory_equal(seen_a, seen_b, N);
	assert_memory_equal(a, b, N * ss);
	free(a);
	free(b);
	free(seen_a);
	free(seen_b);
}

/* A run stopped after 3 batches of epoch 1 and reopened: the batches after
 * its last commit come again with the same pixels (check_epoch compares
 * every sample with ibstore_image_sample of its seed, epoch and id). */
static void test_resume_same_pixels(void **state)
{
	fixture *f = *state;
	ibstore_image_opts img = image_opts(1, IBSTORE_DTYPE_UINT8, IBSTORE_LAYOUT_HWC);
	const char *run = fx_path(f->dir, "resume.run");
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	ro.prune.seed = 5;
	ro.batch_size = BATCH;
	ro.checkpoint_every = 2;
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.images = &img;
	stream s;
	assert_int_equal(ibstore_dataset_open(f->good, &s.ds), 0);
	assert_int_equal(ibstore_run_open(run, &ro, &s.run), 0);
	assert_int_equal(ibstore_loader_open(s.ds, s.run, &lo, &s.l), 0);
	check_epoch(&s, &img, 0, NULL, NULL);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 1, NULL), 0);
	for (int k = 0; k < 3; k++) {
		const ibstore_batch *b;
		assert_int_equal(ibstore_loader_next(s.l, &b), 0);
		assert_non_null(b);
		float losses[BATCH] = {0};
		assert_int_equal(ibstore_loader_report(s.l, b, losses), 0);
		ibstore_loader_release(s.l, b);
	}
	close_stream(&s); /* stopped: committed at batch 2 */
	assert_int_equal(ibstore_dataset_open(f->good, &s.ds), 0);
	assert_int_equal(ibstore_run_open(run, NULL, &s.run), 0);
	assert_int_equal(ibstore_loader_open(s.ds, s.run, &lo, &s.l), 0);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_run_epoch_begin(s.run, 1, &info), 0);
	assert_int_equal(info.cursor, 2);
	uint64_t n = check_epoch(&s, &img, 1, NULL, NULL);
	assert_int_equal(n, info.samples - 2 * BATCH);
	close_stream(&s);
}

/* Broken samples: under fail the epoch stops with the sample named; under
 * skip they are left out and listed, and every emitted sample is whole. */
static void test_broken_images(void **state)
{
	fixture *f = *state;
	ibstore_image_opts img = image_opts(0, IBSTORE_DTYPE_UINT8, IBSTORE_LAYOUT_HWC);
	stream s;
	open_stream(f, f->ds, &s, 0, 1, &img, 2, IBSTORE_CORRUPT_FAIL);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	int rc = 0;
	for (;;) {
		const ibstore_batch *b;
		rc = ibstore_loader_next(s.l, &b);
		if (rc || !b)
			break;
		ibstore_loader_release(s.l, b);
	}
	assert_int_equal(rc, IBSTORE_ECORRUPT);
	const char *msg = ibstore_loader_errmsg(s.l);
	assert_true(strstr(msg, "sample 13") || strstr(msg, "sample 40") || strstr(msg, "sample 77"));
	close_stream(&s);

	open_stream(f, f->ds, &s, 0, 1, &img, 2, IBSTORE_CORRUPT_SKIP);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	uint64_t emitted = 0, skipped = 0;
	int got[3] = {0, 0, 0};
	for (;;) {
		const ibstore_batch *b;
		assert_int_equal(ibstore_loader_next(s.l, &b), 0);
		if (!b)
			break;
		for (size_t i = 0; i < b->n; i++) {
			assert_true(b->ids[i] != TRUNCATED_ID && b->ids[i] != GARBAGE_ID &&
				    b->ids[i] != BOMB_ID);
			size_t es;
			void *want = expected(&s, &img, 0, b->ids[i], &es);
			assert_memory_equal(b->data + b->offsets[i], want, es);
			free(want);
		}
		for (size_t i = 0; i < b->n_skipped; i++) {
			got[0] += b->skipped_ids[i] == TRUNCATED_ID;
			got[1] += b->skipped_ids[i] == GARBAGE_ID;
			got[2] += b->skipped_ids[i] == BOMB_ID;
		}
		emitted += b->n;
		skipped += b->n_skipped;
		float losses[BATCH] = {0};
		assert_int_equal(ibstore_loader_report(s.l, b, losses), 0);
		ibstore_loader_release(s.l, b);
	}
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	assert_int_equal(skipped, 3);
	assert_int_equal(got[0] + got[1] + got[2], 3);
	assert_int_equal(emitted, N - 3);
	close_stream(&s);
}

/* Bad image options are refused at open, naming the field. */
static void test_bad_options(void **state)
{
	fixture *f = *state;
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	assert_int_equal(ibstore_dataset_open(f->good, &ds), 0);
	assert_int_equal(ibstore_run_open(fx_path(f->dir, "bad.run"), &ro, &run), 0);
	ibstore_image_opts img;
	ibstore_image_opts_init(&img);
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.images = &img; /* width and height 0 */
	ibstore_loader *l;
	assert_int_equal(ibstore_loader_open(ds, run, &lo, &l), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_loader_errmsg(l), "width"));
	ibstore_loader_close(l);
	img.width = img.height = 16;
	img.size = 3; /* not a size any version had */
	assert_int_equal(ibstore_loader_open(ds, run, &lo, &l), IBSTORE_EINVAL);
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emits_the_stage),
		cmocka_unit_test(test_same_pixels_everywhere),
		cmocka_unit_test(test_resume_same_pixels),
		cmocka_unit_test(test_broken_images),
		cmocka_unit_test(test_bad_options),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
