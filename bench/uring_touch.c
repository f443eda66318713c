/*
 * bench/uring_touch.c — fio's cold random-read job, with and without looking
 * at the data it reads.
 *
 * usage: uring_touch [--bs N] [--qd N] [--bytes N]
 *                    [--touch none|line|other] FILE...
 *
 * Random reads of N bytes (default 110592, the 110 000-byte record rounded
 * up to 4 KiB) at multiples of N across FILEs (chosen in proportion to
 * their sizes), O_DIRECT through io_uring with --qd reads in flight
 * (default 64), until --bytes have been read (default: the files' total
 * size).  Each read lands in its own slot of a buffer backed by huge pages
 * when they are reserved (MAP_HUGETLB), ordinary pages otherwise, and is
 * resubmitted as soon as it completes, as fio does.  With --touch line
 * every 64-byte cache line of a landed read is loaded once (one byte per
 * line summed) before its slot is reused: the least a reader that checks or
 * copies the data must do; --touch other loads as many lines, the same
 * way, from a second buffer of the same size that no read lands in (the
 * same CPU work, other memory).  Prints one JSON line: MB/s (10^6
 * bytes), reads, seconds, buffers.
 *
 * Why: on the virtual machine the README's figures come from, loading the
 * bytes the virtual disk has just written into memory lowers the disk's
 * read rate at times (bench/loader_speed shows the two side by side); fio
 * never looks at its buffers, so fio alone overstates what any loader that
 * verifies or delivers its data can reach there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "uring_touch: error: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t number(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0)
		die("%s wants a positive integer", opt);
	return v;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	uint64_t bs = 110592, qd = 64, want = 0;
	int touch = 0, nfiles = 0;
	const char **paths = calloc((size_t)argc, sizeof *paths);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: uring_touch [--bs N] [--qd N] [--bytes N] "
			       "[--touch none|line|other] FILE...\n");
			return 0;
		}
		if (i + 1 < argc && !strcmp(argv[i], "--bs"))
			bs = number("--bs", argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--qd"))
			qd = number("--qd", argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--bytes"))
			want = number("--bytes", argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--touch")) {
			const char *t = argv[++i];
			if (strcmp(t, "none") && strcmp(t, "line") && strcmp(t, "other"))
				die("--touch wants none, line or other, not '%s'", t);
			touch = !strcmp(t, "line") ? 1 : !strcmp(t, "other") ? 2 : 0;
		} else if (argv[i][0] == '-')
			die("unknown option '%s' (see --help)", argv[i]);
		else
			paths[nfiles++] = argv[i];
	}
	if (!nfiles)
		die("%s", "no FILE given (see --help)");
	if (bs % 4096 || qd > 4096)
		die("%s", "--bs must be a multiple of 4096 and --qd at most 4096");

	int *fds = calloc((size_t)nfiles, sizeof *fds);
	uint64_t *blocks = calloc((size_t)nfiles, sizeof *blocks), total = 0;
	for (int f = 0; f < nfiles; f++) {
		struct stat st;
		fds[f] = open(paths[f], O_RDONLY | O_DIRECT);
		if (fds[f] < 0 || fstat(fds[f], &st))
			die("cannot open %s with O_DIRECT", paths[f]);
		blocks[f] = (uint64_t)st.st_size / bs;
		total += blocks[f];
	}
	if (!total)
		die("%s", "the files hold no whole block of --bs bytes");
	if (!want)
		want = total * bs;

	size_t len = (size_t)((qd * bs + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1));
	const char *kind = "hugetlb";
	uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED) {
		kind = "pages";
		buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED)
			die("%s", "cannot allocate the read buffers");
	}
	memset(buf, 0, len);
	uint8_t *other = NULL; /* --touch other only */
	if (touch == 2) {
		if (!(other = malloc(len)))
			die("%s", "cannot allocate the second buffer");
		memset(other, 1, len);
	}

	struct io_uring ring;
	if (io_uring_queue_init((unsigned)qd, &ring, 0) < 0)
		die("%s", "io_uring_queue_init failed");
	uint64_t seed = 0x9e3779b97f4a7c15ull, issued = 0, done = 0, sink = 0;
	unsigned inflight = 0, nfree = (unsigned)qd;
	unsigned *free_slot = malloc(qd * sizeof *free_slot); /* LIFO, as fio's free list */
	for (unsigned i = 0; i < qd; i++)
		free_slot[i] = (unsigned)qd - 1 - i;
	double t0 = now();
	for (;;) {
		while (inflight < qd && issued < want) {
			uint64_t b = rnd(&seed) % total;
			int f = 0;
			while (b >= blocks[f])
				b -= blocks[f++];
			unsigned slot = free_slot[--nfree];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read(sqe, fds[f], buf + (size_t)slot * bs, (unsigned)bs, b * bs);
			io_uring_sqe_set_data64(sqe, slot);
			issued += bs;
			inflight++;
		}
		if (!inflight)
			break;
		struct io_uring_cqe *cqe;
		int rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			die("io_uring_submit_and_wait: %s", strerror(-rc));
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->res != (int)bs)
				die("%s", "a read failed or came back short");
			unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
			free_slot[nfree++] = slot;
			if (touch) {
				const uint8_t *p = (touch == 1 ? buf : other) + (size_t)slot * bs;
				for (uint64_t o = 0; o < bs; o += 64)
					sink += p[o];
			}
			done += bs;
			n++;
		}
		io_uring_cq_advance(&ring, n);
		inflight -= n;
	}
	double t = now() - t0;
	printf("{\"touch\": \"%s\", \"bs\": %" PRIu64 ", \"qd\": %" PRIu64 ", \"reads\": %" PRIu64
	       ", \"seconds\": %.6f, \"MB_per_s\": %.2f, \"buffers\": \"%s\", \"sink\": %" PRIu64 "}\n",
	       touch == 1 ? "line" : touch == 2 ? "other" : "none", bs, qd, done / bs, t, done / t / 1e6, kind, sink & 1);
	io_uring_queue_exit(&ring);
	return 0;
}
