/*
 * cmd_bench.c — `ibstore bench`: streams E InfoBatch-pruned epochs of a
 * dataset through the loader as a training loop would — take a batch,
 * report a per-sample loss, release it — and prints each epoch's read
 * accounting and throughput.  The losses are synthetic and deterministic
 * (see synthetic_loss) so pruning behaves as in training while the
 * benchmark measures nothing but the storage path.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "bench"

void cmd_bench_usage(FILE *f)
{
	fputs("Usage: ibstore bench DATASET [options]\n"
	      "\n"
	      "Streams E epochs of DATASET through the loader with InfoBatch pruning, as\n"
	      "a training loop would: every batch gets a synthetic per-sample loss that\n"
	      "is reported back (it becomes the next epoch's score), then the batch is\n"
	      "released.  Prints one row per epoch: kept and pruned samples, bytes read\n"
	      "from the kernel, record bytes of pruned samples never requested\n"
	      "(bytes_skipped), requested bytes of no wanted record (read_around), read\n"
	      "requests, seconds, samples/s and MB/s.\n"
	      "\n"
	      "The synthetic loss of sample ID in epoch e falls over epochs at a\n"
	      "per-sample rate, like a real training loss:\n"
	      "  loss(ID, e) = (0.2 + 2.0 u) * exp(-0.3 e (0.5 + u)),\n"
	      "  u = ((ID * 2654435761) mod 2^32) / 2^32\n"
	      "\n"
	      "An epoch is timed from before epoch_begin to after epoch_end (cache\n"
	      "eviction excluded).  samples_per_s = samples emitted / seconds;\n"
	      "MB_per_s = decoded sample bytes emitted / seconds / 10^6 (MB = 10^6 bytes;\n"
	      "record headers, alignment and read-around are not counted).\n"
	      "\n"
	      "Pruning:\n"
	      "  --epochs E             epochs to stream, also the run's length (default 8)\n"
	      "  --ratio R              prune ratio in [0, 1) (default 0.5)\n"
	      "  --delta D              share of epochs that prune, in [0, 1] (default 0.875)\n"
	      "  --policy P             infobatch (default), random or none\n"
	      "  --mode M               native (default) or compat\n"
	      "  --seed S               seed of the plans (default 0)\n"
	      "  --batch B              batch size (default 256)\n"
	      "  --checkpoint-every N   commit the run state every N batches; 0: at epoch\n"
	      "                         ends only (default 64)\n"
	      "  --run PATH             keep the run state in PATH (created, or resumed when\n"
	      "                         it exists: its configuration must match); by default\n"
	      "                         a temporary state in $TMPDIR is removed at exit\n"
	      "Loader:\n"
	      "  --backend B            auto (default: mmap for a cached dataset, else\n"
	      "                         io_uring, else pread), uring, pread or mmap\n"
	      "  --direct               O_DIRECT reads (default: auto, for records of\n"
	      "                         64 KiB or more read from disk)\n"
	      "  --order O              random (default, the plan's order) or locality\n"
	      "  --threads T            decode threads (default 0: cores - 1, at least 1)\n"
	      "  --gap BYTES            read through gaps up to BYTES between wanted records\n"
	      "                         (default 32K; 0 turns coalescing off)\n"
	      "  --prefetch N           read at most N batches ahead of the consumer\n"
	      "                         (default: as far as the budget allows)\n"
	      "  --queue-depth N        reads in flight, 1..4096 (default 64)\n"
	      "  --budget SIZE          read windows + decoded batches (default 512M)\n"
	      "  --no-verify            skip the xxh3 check of every payload\n"
	      "Images (JPEG, PNG, WebP samples decoded in the decode threads):\n"
	      "  --images SIZE          decode and crop every sample to SIZE x SIZE (or\n"
	      "                         HxW) RGB, eval: short side resized, centre crop;\n"
	      "                         MB/s then counts the decoded pixels emitted\n"
	      "  --train                with --images: RandomResizedCrop and flip instead\n"
	      "  --pad N                with --train: RandomCrop with N pixels of padding\n"
	      "                         instead of RandomResizedCrop\n"
	      "  --float                with --images: float32 CHW tensors (x / 255) instead\n"
	      "                         of uint8 HWC\n"
	      "Measurement:\n"
	      "  --cold                 before every epoch evict the dataset from the page\n"
	      "                         cache (posix_fadvise DONTNEED on every shard) and,\n"
	      "                         as root, sync and write 1 to /proc/sys/vm/drop_caches\n"
	      "  --digest               print an xxh3 digest of everything emitted (ids,\n"
	      "                         labels, weights, sizes, sample bytes, in order) per\n"
	      "                         epoch and in all, as '# digest ...' lines: runs that\n"
	      "                         emit the same stream print the same digests\n"
	      "  --json                 one JSON object per epoch on stdout with the keys\n"
	      "                         epoch, kept, pruned, bytes_read, bytes_skipped,\n"
	      "                         read_around, requests, seconds, samples_per_s,\n"
	      "                         MB_per_s; the header and summary go to stderr\n"
	      "  -h, --help             show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 failure (dataset, run state or loader), 2 wrong\n"
	      "arguments.\n",
	      f);
}

typedef struct bench_args {
	const char *dataset;
	const char *run;
	ibstore_run_opts ro;
	ibstore_loader_opts lo;
	int cold;
	int json;
	int digest;
	ibstore_image_opts img;
	int images, train, floats;
} bench_args;

enum {
	OPT_BATCH = 256,
	OPT_BACKEND,
	OPT_DIRECT,
	OPT_COLD,
	OPT_ORDER,
	OPT_THREADS,
	OPT_GAP,
	OPT_PREFETCH,
	OPT_QUEUE_DEPTH,
	OPT_BUDGET,
	OPT_NO_VERIFY,
	OPT_CHECKPOINT_EVERY,
	OPT_RUN,
	OPT_JSON,
	OPT_DIGEST,
	OPT_IMAGES,
	OPT_TRAIN,
	OPT_FLOAT,
	OPT_PAD,
};

/* Parses a count > 0 (u32) for option `name`; 0, or the exit status. */
static int parse_count(const char *name, const char *s, uint32_t *out)
{
	if (cli_parse_u32(s, out) || *out == 0)
		return cli_usage_error(CMD, "--%s: '%s' is not a count > 0", name, s);
	return 0;
}

/* Parses argv into *a; 0, -1 after --help, or the exit status to return. */
static int parse_args(int argc, char **argv, bench_args *a)
{
	static const struct option longopts[] = {
		CLI_PRUNE_LONGOPTS,
		{"batch", required_argument, NULL, OPT_BATCH},
		{"backend", required_argument, NULL, OPT_BACKEND},
		{"direct", no_argument, NULL, OPT_DIRECT},
		{"cold", no_argument, NULL, OPT_COLD},
		{"order", required_argument, NULL, OPT_ORDER},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"gap", required_argument, NULL, OPT_GAP},
		{"prefetch", required_argument, NULL, OPT_PREFETCH},
		{"queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH},
		{"budget", required_argument, NULL, OPT_BUDGET},
		{"no-verify", no_argument, NULL, OPT_NO_VERIFY},
		{"checkpoint-every", required_argument, NULL, OPT_CHECKPOINT_EVERY},
		{"run", required_argument, NULL, OPT_RUN},
		{"json", no_argument, NULL, OPT_JSON},
		{"digest", no_argument, NULL, OPT_DIGEST},
		{"images", required_argument, NULL, OPT_IMAGES},
		{"train", no_argument, NULL, OPT_TRAIN},
		{"float", no_argument, NULL, OPT_FLOAT},
		{"pad", required_argument, NULL, OPT_PAD},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	ibstore_prune_opts *p = &a->ro.prune;
	int opt, rc;
	char msg[256];

	ibstore_run_opts_init(&a->ro);
	ibstore_prune_opts_init(p);
	ibstore_loader_opts_init(&a->lo);
	ibstore_image_opts_init(&a->img);
	p->epochs = 8;
	a->ro.batch_size = 256;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_BATCH:
			if ((rc = parse_count("batch", optarg, &a->ro.batch_size)))
				return rc;
			break;
		case OPT_BACKEND:
			if (ibstore_backend_parse(optarg, &a->lo.backend))
				return cli_usage_error(CMD,
						       "--backend: '%s' is not auto, uring, pread or mmap",
						       optarg);
			break;
		case OPT_DIRECT: a->lo.direct = 1; break;
		case OPT_COLD: a->cold = 1; break;
		case OPT_ORDER:
			if (ibstore_order_parse(optarg, &a->lo.order))
				return cli_usage_error(CMD, "--order: '%s' is not random or locality",
						       optarg);
			break;
		case OPT_THREADS:
			if (cli_parse_u32(optarg, &a->lo.threads) || a->lo.threads > 64)
				return cli_usage_error(CMD, "--threads: '%s' is not a count in 0..64",
						       optarg);
			break;
		case OPT_GAP:
			if (cli_parse_size(optarg, &a->lo.gap))
				return cli_usage_error(CMD, "--gap: '%s' is not a byte size", optarg);
			break;
		case OPT_PREFETCH:
			if ((rc = parse_count("prefetch", optarg, &a->lo.prefetch)))
				return rc;
			break;
		case OPT_QUEUE_DEPTH:
			if (cli_parse_u32(optarg, &a->lo.queue_depth) ||
			    a->lo.queue_depth == 0 || a->lo.queue_depth > 4096)
				return cli_usage_error(
					CMD, "--queue-depth: '%s' is not a count in 1..4096", optarg);
			break;
		case OPT_BUDGET:
			if (cli_parse_size(optarg, &a->lo.budget) || a->lo.budget == 0)
				return cli_usage_error(CMD, "--budget: '%s' is not a byte size > 0",
						       optarg);
			break;
		case OPT_NO_VERIFY: a->lo.verify = 0; break;
		case OPT_CHECKPOINT_EVERY:
			if (cli_parse_u32(optarg, &a->ro.checkpoint_every))
				return cli_usage_error(CMD, "--checkpoint-every: '%s' is not a "
						       "count (0: at epoch ends only)", optarg);
			break;
		case OPT_RUN:
			if (optarg[0] == '\0')
				return cli_usage_error(CMD, "--run: empty path");
			a->run = optarg;
			break;
		case OPT_JSON: a->json = 1; break;
		case OPT_DIGEST: a->digest = 1; break;
		case OPT_IMAGES:
			if (cli_parse_hxw(optarg, &a->img.height, &a->img.width))
				return cli_usage_error(CMD, "--images: bad size '%s' (SIZE or HxW, "
							    "1..8192)", optarg);
			a->images = 1;
			break;
		case OPT_TRAIN: a->train = 1; break;
		case OPT_FLOAT: a->floats = 1; break;
		case OPT_PAD:
			if ((rc = cli_parse_pad(CMD, optarg, &a->img.pad)))
				return rc;
			break;
		case 'h': cmd_bench_usage(stdout); return -1;
		default:
			rc = cli_parse_prune_opt(CMD, opt, optarg, p);
			if (rc < 0)
				return cli_getopt_error(CMD);
			if (rc)
				return rc;
			break;
		}
	}
	if (optind >= argc)
		return cli_usage_error(CMD, "a DATASET is required");
	if (optind + 1 < argc)
		return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
	a->dataset = argv[optind];
	if (ibstore_prune_opts_check(p, msg, sizeof(msg)))
		return cli_usage_error(CMD, "%s", msg);
	if ((a->train || a->floats) && !a->images)
		return cli_usage_error(CMD, "--train and --float need --images SIZE");
	if (a->img.pad && !a->train)
		return cli_usage_error(CMD, "--pad is a training augmentation: it needs --train");
	if (a->images) {
		a->img.mode = a->train ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL;
		a->img.dtype = a->floats ? IBSTORE_DTYPE_FLOAT32 : IBSTORE_DTYPE_UINT8;
		a->img.layout = a->floats ? IBSTORE_LAYOUT_CHW : IBSTORE_LAYOUT_HWC;
		a->lo.images = &a->img;
	}
	return 0;
}

/*
 * The synthetic training loss of sample `id` in epoch `epoch`:
 *   loss(id, e) = (0.2 + 2.0 u) * exp(-0.3 e (0.5 + u)),
 *   u = ((id * 2654435761) mod 2^32) / 2^32   (Knuth's multiplicative hash).
 * Samples start at different losses (0.2 .. 2.2) and fall at different
 * rates, so some sit below the epoch's mean and get pruned, as in training,
 * while the result depends on nothing but (id, epoch): runs are reproducible
 * and independent of backend, thread count and order.
 */
static float synthetic_loss(uint64_t id, uint32_t epoch)
{
	double u = (double)(uint32_t)(id * 2654435761u) / 4294967296.0;

	return (float)((0.2 + 2.0 * u) * exp(-0.3 * (double)epoch * (0.5 + u)));
}

/* ---- cold cache ---- */

/* Evicts the dataset's shards; as root also drops the whole page cache so
 * the catalog and the file system's metadata are cold too.  Failure of the
 * latter is ignored (a container may forbid it). */
static int evict(ibstore_dataset *ds)
{
	int rc = ibstore_dataset_evict(ds);

	if (rc)
		return cli_fail(CMD, "evicting the dataset: %s",
				cli_errmsg(ibstore_dataset_errmsg(ds), rc));
	if (geteuid() == 0) {
		int fd;

		sync();
		fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "1", 1) != 1) {
				/* not allowed here: the fadvise above has to do */
			}
			close(fd);
		}
	}
	return 0;
}

/* ---- temporary run state ---- */

/* A run state in a fresh directory under $TMPDIR: the library creates the
 * file itself (an existing empty file is not a run state). */
typedef struct temp_run {
	char dir[4096];
	char path[4096 + 16];
} temp_run;

static int temp_run_make(temp_run *t)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || tmp[0] == '\0')
		tmp = "/tmp";
	int n = snprintf(t->dir, sizeof(t->dir), "%s/ibstore-bench.XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(t->dir))
		return cli_fail(CMD, "$TMPDIR is too long");
	if (!mkdtemp(t->dir))
		return cli_fail(CMD, "cannot create a temporary directory in %s: %s", tmp,
				strerror(errno));
	snprintf(t->path, sizeof(t->path), "%s/run", t->dir);
	return 0;
}

static void temp_run_remove(temp_run *t)
{
	if (t->dir[0] == '\0')
		return;
	unlink(t->path);
	rmdir(t->dir);
	t->dir[0] = '\0';
}

/* ---- interruption ---- */

/* SIGINT / SIGTERM end the run after the current batch, so the temporary
 * state is still removed. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- output ---- */

typedef struct epoch_row {
	uint32_t epoch;
	uint64_t kept, pruned;
	uint64_t bytes_read, bytes_skipped, read_around, requests;
	uint64_t samples, data_bytes;
	double seconds;
} epoch_row;

static double rate(double x, double seconds)
{
	return seconds > 0 ? x / seconds : 0.0;
}

static void print_header(FILE *f, const bench_args *a, const ibstore_info *info,
			 const ibstore_loader_stats *st, uint32_t threads)
{
	char budget[32];

	fprintf(f,
		"# %s: %" PRIu64 " samples, %" PRIu32 " shards | backend %s%s, buffers %s, "
		"direct %s, registered %s, threads %" PRIu32 ", queue depth %" PRIu32
		", budget %s, gap %" PRIu64 ", order %s, verify %s, cold %s\n",
		a->dataset, info->samples, info->shards, st->backend,
		a->lo.backend == IBSTORE_BACKEND_AUTO ? " (auto: mmap when cached)" : "", st->buffers,
		a->lo.direct < 0 ? "auto (large records)" : st->direct ? "yes" : "no",
		st->registered ? "yes" : "no", threads,
		a->lo.queue_depth, cli_human_bytes(a->lo.budget, budget, sizeof(budget)),
		a->lo.gap, ibstore_order_name(a->lo.order),
		a->lo.verify ? "yes" : "no", a->cold ? "yes" : "no");
	if (a->images)
		fprintf(f, "# images %" PRIu32 "x%" PRIu32 " %s, %s %s\n", a->img.height,
			a->img.width, ibstore_images_mode_name(a->img.mode),
			ibstore_dtype_name(a->img.dtype), ibstore_layout_name(a->img.layout));
}

static void print_table_head(void)
{
	printf("%5s %10s %10s %14s %14s %12s %10s %9s %13s %10s\n", "epoch", "kept", "pruned",
	       "bytes_read", "bytes_skipped", "read_around", "requests", "seconds",
	       "samples_per_s", "MB_per_s");
}

static void print_row(const bench_args *a, const epoch_row *r)
{
	double sps = rate((double)r->samples, r->seconds);
	double mbps = rate((double)r->data_bytes, r->seconds) / 1e6;

	if (a->json) {
		printf("{\"epoch\":%" PRIu32 ",\"kept\":%" PRIu64 ",\"pruned\":%" PRIu64
		       ",\"bytes_read\":%" PRIu64 ",\"bytes_skipped\":%" PRIu64
		       ",\"read_around\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"seconds\":",
		       r->epoch, r->kept, r->pruned, r->bytes_read, r->bytes_skipped,
		       r->read_around, r->requests);
		cli_json_double(stdout, r->seconds);
		fputs(",\"samples_per_s\":", stdout);
		cli_json_double(stdout, sps);
		fputs(",\"MB_per_s\":", stdout);
		cli_json_double(stdout, mbps);
		fputs("}\n", stdout);
	} else {
		printf("%5" PRIu32 " %10" PRIu64 " %10" PRIu64 " %14" PRIu64 " %14" PRIu64
		       " %12" PRIu64 " %10" PRIu64 " %9.3f %13.0f %10.1f\n",
		       r->epoch, r->kept, r->pruned, r->bytes_read, r->bytes_skipped,
		       r->read_around, r->requests, r->seconds, sps, mbps);
	}
	fflush(stdout); /* rows appear as epochs finish */
}

/* ---- the loop ---- */

/* Streams one epoch; fills *r.  0 or the exit status after a message. */
/* Chains a batch into *d: ids, labels, weights, sizes, then the bytes. */
static void digest_batch(uint64_t *d, const ibstore_batch *b)
{
	*d = XXH3_64bits_withSeed(b->ids, b->n * sizeof *b->ids, *d);
	*d = XXH3_64bits_withSeed(b->labels, b->n * sizeof *b->labels, *d);
	*d = XXH3_64bits_withSeed(b->weights, b->n * sizeof *b->weights, *d);
	*d = XXH3_64bits_withSeed(b->sizes, b->n * sizeof *b->sizes, *d);
	*d = XXH3_64bits_withSeed(b->data, b->data_size, *d);
}

static int run_epoch(ibstore_loader *l, uint32_t epoch, float *losses, uint32_t cap,
		     epoch_row *r, uint64_t *digest)
{
	const ibstore_batch *b;

	memset(r, 0, sizeof(*r));
	r->epoch = epoch;
	double t0 = cli_now();
	int rc;
	if ((rc = ibstore_loader_epoch_begin(l, epoch, NULL)))
		return cli_fail(CMD, "epoch %" PRIu32 ": %s", epoch,
				cli_errmsg(ibstore_loader_errmsg(l), rc));
	for (;;) {
		size_t i;

		if ((rc = ibstore_loader_next(l, &b)))
			return cli_fail(CMD, "epoch %" PRIu32 ": %s", epoch,
					cli_errmsg(ibstore_loader_errmsg(l), rc));
		if (!b)
			break;
		if (b->n > cap) {
			ibstore_loader_release(l, b);
			return cli_fail(CMD, "epoch %" PRIu32 ": a batch of %zu samples", epoch,
					b->n);
		}
		for (i = 0; i < b->n; i++)
			losses[i] = synthetic_loss(b->ids[i], epoch);
		r->samples += b->n;
		r->data_bytes += b->data_size;
		if (digest)
			digest_batch(digest, b);
		rc = ibstore_loader_report(l, b, losses);
		ibstore_loader_release(l, b);
		if (rc)
			return cli_fail(CMD, "epoch %" PRIu32 ": reporting losses: %s", epoch,
					cli_errmsg(ibstore_loader_errmsg(l), rc));
		if (interrupted)
			return cli_fail(CMD, "interrupted in epoch %" PRIu32, epoch);
	}
	/* The statistics are the epoch's own until epoch_end drains it. */
	ibstore_loader_stats st;
	if ((rc = ibstore_loader_stats_get(l, &st)))
		return cli_fail(CMD, "epoch %" PRIu32 ": statistics: %s", epoch,
				cli_errmsg(ibstore_loader_errmsg(l), rc));
	if ((rc = ibstore_loader_epoch_end(l)))
		return cli_fail(CMD, "epoch %" PRIu32 ": %s", epoch,
				cli_errmsg(ibstore_loader_errmsg(l), rc));
	double t1 = cli_now();
	r->kept = st.kept;
	r->pruned = st.pruned;
	r->bytes_read = st.bytes_read;
	r->bytes_skipped = st.bytes_skipped;
	r->read_around = st.read_around;
	r->requests = st.requests;
	r->seconds = t1 - t0;
	return 0;
}

/* The epoch to start at: 0 for a new run; after the last finished epoch, or
 * the unfinished one, for a run state that already exists. */
static uint32_t first_epoch(const ibstore_run *run)
{
	ibstore_run_info ri;

	if (ibstore_run_info_get(run, &ri))
		return 0;
	if (ri.in_epoch)
		return ri.epoch;
	return ri.epochs_done > 0 ? ri.epoch + 1 : 0;
}

/* Decode threads as the loader resolves 0 (cores - 1, at least 1). */
static uint32_t resolved_threads(uint32_t t)
{
	if (t)
		return t;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 1 ? (uint32_t)(n - 1) : 1;
}

int cmd_bench(int argc, char **argv)
{
	char progname[] = "ibstore " CMD;
	bench_args a;
	ibstore_dataset *ds = NULL;
	ibstore_run *run = NULL;
	ibstore_loader *l = NULL;
	float *losses = NULL;
	const char *run_path;
	uint64_t digest_all = 0;
	uint64_t tot_samples = 0, tot_pruned = 0, tot_plan = 0, tot_skipped = 0, tot_bytes = 0;
	uint32_t pruning_epochs = 0;
	double tot_seconds = 0;
	char human[32];
	int status = CLI_EXIT_FAIL;

	memset(&a, 0, sizeof(a));
	temp_run tmp;
	memset(&tmp, 0, sizeof(tmp));
	argv[0] = progname;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	FILE *meta = a.json ? stderr : stdout;

	ibstore_info info;
	if (cli_open_dataset(CMD, a.dataset, &ds, &info))
		goto out;
	a.ro.samples = info.samples;

	if (a.run) {
		run_path = a.run;
	} else {
		if (temp_run_make(&tmp))
			goto out;
		run_path = tmp.path;
	}
	catch_signals();
	rc = ibstore_run_open(run_path, &a.ro, &run);
	if (rc) {
		cli_fail(CMD, "%s: %s", run_path, cli_errmsg(ibstore_run_errmsg(run), rc));
		goto out;
	}
	losses = malloc((size_t)a.ro.batch_size * sizeof(*losses));
	if (!losses) {
		cli_fail(CMD, "out of memory for a batch of %" PRIu32 " losses", a.ro.batch_size);
		goto out;
	}
	rc = ibstore_loader_open(ds, run, &a.lo, &l);
	if (rc) {
		cli_fail(CMD, "%s: opening the loader: %s", a.dataset,
			 cli_errmsg(ibstore_loader_errmsg(l), rc));
		goto out;
	}
	ibstore_loader_stats st;
	if ((rc = ibstore_loader_stats_get(l, &st))) {
		cli_fail(CMD, "loader statistics: %s", cli_errmsg(ibstore_loader_errmsg(l), rc));
		goto out;
	}
	print_header(meta, &a, &info, &st, resolved_threads(a.lo.threads));
	if (!a.json)
		print_table_head();

	uint32_t e0 = first_epoch(run);
	for (uint32_t e = e0; e < a.ro.prune.epochs; e++) {
		epoch_row r;
		uint64_t digest = 0;

		if (a.cold && evict(ds))
			goto out;
		if (run_epoch(l, e, losses, a.ro.batch_size, &r, a.digest ? &digest : NULL))
			goto out;
		print_row(&a, &r);
		if (a.digest) {
			digest_all = XXH3_64bits_withSeed(&digest, sizeof digest, digest_all);
			fprintf(meta, "# digest epoch %" PRIu32 " %016" PRIx64 " (%" PRIu64
				" samples)\n", e, digest, r.samples);
		}
		tot_samples += r.samples;
		tot_bytes += r.data_bytes;
		tot_pruned += r.pruned;
		pruning_epochs += r.pruned > 0;
		tot_plan += r.kept + r.pruned;
		tot_skipped += r.bytes_skipped;
		tot_seconds += r.seconds;
	}
	fprintf(meta,
		"# %" PRIu32 " epochs in %.3f s: mean %.0f samples/s, %.1f MB/s; %" PRIu32
		" epochs pruned %.1f%% of their samples overall; %" PRIu64
		" bytes skipped (%s)\n",
		a.ro.prune.epochs - e0, tot_seconds, rate((double)tot_samples, tot_seconds),
		rate((double)tot_bytes, tot_seconds) / 1e6, pruning_epochs,
		tot_plan ? 100.0 * (double)tot_pruned / (double)tot_plan : 0.0, tot_skipped,
		cli_human_bytes(tot_skipped, human, sizeof(human)));
	if (a.digest)
		fprintf(meta, "# digest %016" PRIx64 "\n", digest_all);
	status = CLI_EXIT_OK;
out:
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	temp_run_remove(&tmp);
	free(losses);
	return status;
}
