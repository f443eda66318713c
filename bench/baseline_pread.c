/*
 * bench/baseline_pread.c — the simplest reader a C programmer would write:
 * one thread, one pread() per kept record, in plan order.
 *
 * usage: baseline_pread DATASET IDS [--cold]
 *
 * IDS is `ibstore plan` output (first column).  Before the clock starts the
 * dataset is opened with the ibstore API only to look up each record's
 * shard, payload offset and size (ibstore_dataset_locate) and the shard
 * files are opened; the timed loop then preads the raw payload bytes of
 * each kept record into a batch buffer (suite_common.h): no record
 * header, no checksum, no decompression (the datasets are stored
 * uncompressed).  With --cold the
 * shards are evicted (posix_fadvise) and, as root, the page cache dropped
 * just before the clock starts.
 */
#include "suite_common.h"

#include <ibstore.h>

int main(int argc, char **argv)
{
	suite_prog = "baseline_pread";
	if (argc < 3)
		die("usage: baseline_pread DATASET IDS [--cold]");
	int cold = argc > 3 && !strcmp(argv[3], "--cold");
	ibstore_dataset *ds;
	if (ibstore_dataset_open(argv[1], &ds))
		die("%s", ibstore_dataset_errmsg(ds));
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);
	size_t n;
	uint64_t *ids = read_ids(argv[2], &n);
	int *fds = calloc(info.shards, sizeof *fds);
	for (uint32_t s = 0; s < info.shards; s++) {
		fds[s] = open(ibstore_dataset_shard_path(ds, s), O_RDONLY);
		if (fds[s] < 0)
			die("%s: %s", ibstore_dataset_shard_path(ds, s), strerror(errno));
	}
	struct loc {
		int fd;
		uint32_t size;
		uint64_t off;
	} *locs = malloc(n * sizeof *locs);
	for (size_t i = 0; i < n; i++) {
		ibstore_location l;
		if (ibstore_dataset_locate(ds, ids[i], &l))
			die("locate %" PRIu64 ": %s", ids[i], ibstore_dataset_errmsg(ds));
		if (l.codec != IBSTORE_CODEC_NONE)
			die("sample %" PRIu64 " is compressed; this baseline reads raw records", ids[i]);
		locs[i] = (struct loc){fds[l.shard], l.stored_size, l.payload_offset};
	}
	struct batch_out out = {0};
	if (cold) {
		for (uint32_t s = 0; s < info.shards; s++)
			evict_fd(fds[s]);
		drop_caches();
	}
	double t0 = now();
	uint64_t bytes = 0, sink = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf = batch_slot(&out, locs[i].size);
		size_t got = 0;
		while (got < locs[i].size) {
			ssize_t r = pread(locs[i].fd, buf + got, locs[i].size - got,
					  (off_t)(locs[i].off + got));
			if (r <= 0)
				die("pread: %s", r ? strerror(errno) : "short file");
			got += (size_t)r;
		}
		bytes += got;
		sink += got ? buf[got - 1] : 0;
	}
	double t = now() - t0;
	char extra[64];
	snprintf(extra, sizeof extra, "\"sink\": %" PRIu64, sink & 1);
	report("pread", t, n, bytes, extra);
	ibstore_dataset_close(ds);
	return 0;
}
