/*
 * plan_speed.c — times ibstore_plan_compute() (plus ibstore_plan_free(),
 * i.e. one epoch's whole planning cost) on a file of float32 scores.
 * Driven by bench/plan_speed, which builds it against a meson build.
 *
 * usage: plan_speed SCORES.f32 native|compat EPOCH EPOCHS REPS [DUMP]
 * Prints one line per repetition: "seconds kept below_mean threshold".
 * DUMP (optional) receives the plan, computed once more untimed: kept uint32
 * ids, then kept float32 weights, little-endian (the host's order; the
 * driver runs on the same machine).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ibstore.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6 && argc != 7) {
		fprintf(stderr,
			"usage: plan_speed SCORES.f32 native|compat EPOCH EPOCHS REPS [DUMP]\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0) {
		perror(argv[1]);
		return 1;
	}
	long size = ftell(f);
	rewind(f);
	uint64_t n = (uint64_t)size / 4;
	float *s = malloc((size_t)(n ? n : 1) * 4);
	if (!s || fread(s, 4, (size_t)n, f) != n) {
		fprintf(stderr, "plan_speed: cannot read %s\n", argv[1]);
		return 1;
	}
	fclose(f);

	ibstore_prune_opts o;
	ibstore_prune_opts_init(&o);
	if (ibstore_mode_parse(argv[2], &o.mode))
		return 2;
	uint32_t epoch = (uint32_t)strtoul(argv[3], NULL, 10);
	o.epochs = (uint32_t)strtoul(argv[4], NULL, 10);
	int reps = atoi(argv[5]);
	char msg[256];

	for (int r = 0; r < reps; r++) {
		ibstore_plan *p;
		double t0 = now();
		int rc = ibstore_plan_compute(&o, epoch, s, n, &p, msg, sizeof msg);
		if (rc) {
			fprintf(stderr, "plan_speed: %s\n", msg);
			return 1;
		}
		ibstore_plan_stats st = p->stats;
		ibstore_plan_free(p);
		double t = now() - t0;
		printf("%.9f %llu %llu %.17g\n", t, (unsigned long long)st.kept,
		       (unsigned long long)st.below_mean, st.threshold);
	}
	if (argc == 7) { /* untimed: the plan once more, for the driver to compare */
		ibstore_plan *p;
		if (ibstore_plan_compute(&o, epoch, s, n, &p, msg, sizeof msg))
			return 1;
		FILE *d = fopen(argv[6], "wb");
		uint32_t *ids = malloc((size_t)(p->len ? p->len : 1) * 4);
		if (!d || !ids)
			return 1;
		for (uint64_t i = 0; i < p->len; i++)
			ids[i] = (uint32_t)p->ids[i];
		fwrite(ids, 4, (size_t)p->len, d);
		fwrite(p->weights, 4, (size_t)p->len, d);
		fclose(d);
		free(ids);
		ibstore_plan_free(p);
	}
	free(s);
	return 0;
}
