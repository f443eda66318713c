/* bench/suite_common.h — helpers shared by bench/run's C drivers (timing,
 * the kept-id list, cold cache, one JSON result line). Header-only. */
#ifndef SUITE_COMMON_H
#define SUITE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *suite_prog = "suite";

static inline void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: error: ", suite_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads the first column of `ibstore plan` output ("ID WEIGHT" lines). */
static inline uint64_t *read_ids(const char *path, size_t *n_out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	size_t n = 0, cap = 1 << 16;
	uint64_t *ids = malloc(cap * sizeof *ids);
	char line[256];
	while (fgets(line, sizeof line, f)) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(line, &end, 10);
		if (end == line || errno)
			die("%s: bad line '%s'", path, line);
		if (n == cap)
			ids = realloc(ids, (cap *= 2) * sizeof *ids);
		ids[n++] = v;
	}
	fclose(f);
	*n_out = n;
	return ids;
}

/* Drops the page cache (root only; silently skipped otherwise). */
static inline void drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "3", 1) != 1)
			fprintf(stderr, "%s: drop_caches: %s\n", suite_prog, strerror(errno));
		close(fd);
	}
}

static inline void evict_fd(int fd)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

/*
 * Where a baseline puts each sample: a loader hands training batches, so
 * every baseline assembles its samples into one batch buffer of
 * BATCH_SAMPLES samples, packed back to back, and reuses that buffer for
 * the next batch (the cheapest batch assembly there is: one buffer, no
 * allocation after the first batch).  Copying every sample into the same
 * few hundred bytes instead would keep the destination in the L1/L2 cache
 * and measure less work than a loader does.
 */
#define BATCH_SAMPLES 256

struct batch_out {
	uint8_t *buf;
	size_t cap, used;
	unsigned filled;
};

/* The destination for the next sample of `size` bytes. */
static inline uint8_t *batch_slot(struct batch_out *b, size_t size)
{
	if (b->filled == BATCH_SAMPLES)
		b->filled = 0, b->used = 0;
	if (b->used + size > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 20;
		while (cap < b->used + size)
			cap *= 2;
		uint8_t *n = realloc(b->buf, cap);
		if (!n)
			die("out of memory (%zu bytes)", cap);
		b->buf = n;
		b->cap = cap;
	}
	uint8_t *dst = b->buf + b->used;
	b->used += size;
	b->filled++;
	return dst;
}

/* One result line on stdout. */
static inline void report(const char *system, double seconds, uint64_t samples, uint64_t bytes,
		   const char *extra)
{
	printf("{\"system\": \"%s\", \"seconds\": %.6f, \"samples\": %" PRIu64
	       ", \"bytes\": %" PRIu64 ", \"samples_per_s\": %.1f, \"MB_per_s\": %.2f%s%s}\n",
	       system, seconds, samples, bytes, samples / seconds, bytes / seconds / 1e6,
	       extra && *extra ? ", " : "", extra ? extra : "");
	fflush(stdout);
}

#endif
