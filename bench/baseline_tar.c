/*
 * bench/baseline_tar.c — WebDataset-style streaming: tar shards read
 * sequentially from start to end, a pruned sample's bytes read through and
 * dropped.
 *
 * usage: baseline_tar IDS N [--cold] TAR...
 *
 * Each sample is a group of members sharing a stem; the stem's decimal
 * file name is the sample id (00000123.bin, 00000123.cls).  The reader
 * streams every shard with read() into a 4 MiB buffer (posix_fadvise
 * SEQUENTIAL), parses the 512-byte ustar headers and copies the payload
 * (.bin) of a kept sample (id in IDS) into a batch buffer (suite_common.h);
 * everything else is read and skipped.  Samples come out in archive order,
 * not plan order (a streaming reader can only shuffle within a buffer; none
 * is modelled, which favours this baseline).  N = samples in the dataset.
 * With --cold the shards are evicted (posix_fadvise) and, as root, the page
 * cache dropped just before the clock starts.
 */
#include "suite_common.h"

#define CHUNK (4u << 20)

struct stream {
	int fd;
	uint8_t *buf;
	size_t len, pos;
	uint64_t total;
};

/* Copies (dst != NULL) or skips `n` bytes; returns 0 at a clean EOF. */
static int take(struct stream *s, uint8_t *dst, size_t n)
{
	while (n) {
		if (s->pos == s->len) {
			ssize_t r = read(s->fd, s->buf, CHUNK);
			if (r < 0)
				die("read: %s", strerror(errno));
			if (r == 0)
				return 0;
			s->len = (size_t)r;
			s->pos = 0;
			s->total += (uint64_t)r;
		}
		size_t k = s->len - s->pos < n ? s->len - s->pos : n;
		if (dst) {
			memcpy(dst, s->buf + s->pos, k);
			dst += k;
		}
		s->pos += k;
		n -= k;
	}
	return 1;
}

int main(int argc, char **argv)
{
	suite_prog = "baseline_tar";
	if (argc < 4)
		die("usage: baseline_tar IDS N [--cold] TAR...");
	size_t nk;
	uint64_t *ids = read_ids(argv[1], &nk);
	uint64_t N = strtoull(argv[2], NULL, 10);
	int first = 3, cold = 0;
	if (!strcmp(argv[3], "--cold"))
		cold = 1, first = 4;
	uint8_t *keep = calloc(N, 1);
	for (size_t i = 0; i < nk; i++) {
		if (ids[i] >= N)
			die("id %" PRIu64 " >= N", ids[i]);
		keep[ids[i]] = 1;
	}
	int nt = argc - first;
	int *fds = malloc(nt * sizeof *fds);
	for (int i = 0; i < nt; i++) {
		fds[i] = open(argv[first + i], O_RDONLY);
		if (fds[i] < 0)
			die("%s: %s", argv[first + i], strerror(errno));
		if (cold)
			evict_fd(fds[i]);
	}
	if (cold)
		drop_caches();
	struct stream s = {.buf = aligned_alloc(4096, CHUNK)};
	struct batch_out out = {0};
	uint8_t hdr[512];
	uint64_t samples = 0, bytes = 0, sink = 0;
	double t0 = now();
	for (int i = 0; i < nt; i++) {
		s.fd = fds[i];
		s.len = s.pos = 0;
		posix_fadvise(s.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		while (take(&s, hdr, 512)) {
			if (hdr[0] == 0)
				break; /* end-of-archive blocks */
			uint64_t size = strtoull((char *)hdr + 124, NULL, 8);
			uint64_t padded = (size + 511) & ~511ull;
			char name[101];
			memcpy(name, hdr, 100);
			name[100] = 0;
			char *slash = strrchr(name, '/');
			char *base = slash ? slash + 1 : name;
			char *dot = strchr(base, '.');
			uint64_t id = strtoull(base, NULL, 10);
			int payload = dot && !strcmp(dot, ".bin") && hdr[156] != '5';
			if (payload && id < N && keep[id]) {
				if (size > (64u << 20))
					die("member too large");
				uint8_t *sample = batch_slot(&out, size);
				if (!take(&s, sample, size) || !take(&s, NULL, padded - size))
					die("truncated tar");
				samples++;
				bytes += size;
				sink += size ? sample[size - 1] : 0;
			} else if (!take(&s, NULL, padded) && padded) {
				die("truncated tar");
			}
		}
	}
	double t = now() - t0;
	if (samples != nk)
		die("found %" PRIu64 " of %zu kept samples in the tar", samples, nk);
	char extra[96];
	snprintf(extra, sizeof extra, "\"bytes_read\": %" PRIu64 ", \"sink\": %" PRIu64, s.total,
		 sink & 1);
	report("tar", t, samples, bytes, extra);
	return 0;
}
