/* bench/suite_common.h — helpers shared by bench/run's C drivers (timing,
 * the kept-id list, cold cache, one JSON result line). Header-only. */
#ifndef SUITE_COMMON_H
#define SUITE_COMMON_H

#define _GNU_SOURCE
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
