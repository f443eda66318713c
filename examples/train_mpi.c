/*
 * train_mpi.c — data-parallel training over MPI with InfoBatch pruning in
 * the storage layer: softmax regression on Fashion-MNIST.
 *
 *   mpirun -np 3 build/train_mpi work/fmnist-train.ibs work/fmnist-test.ibs
 *
 * Every rank opens the same dataset (a copy on each machine, or one shared
 * over a network file system) and its own run state with rank and world
 * taken from MPI_COMM_WORLD.  At each epoch_begin every rank computes the
 * same global plan from the same seed and scores, and its loader reads only
 * the rank's slice.  Per batch the ranks average their gradients with
 * MPI_Allreduce (the model stays identical everywhere); each rank reports
 * its samples' losses to its loader and keeps them; after the last batch of
 * the epoch ibstore_run_exchange_mpi() hands every rank the other ranks'
 * losses, so all hold the same scores for the next epoch's plan.  Rank 0
 * prints each epoch's plan, loss and test accuracy, then the samples and
 * bytes each rank read.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibstore_mpi.h"

#define IN 784 /* 28 x 28 pixels */
#define OUT 10
#define NPARAM (OUT * IN + OUT)

typedef struct args {
	const char *train, *test, *run_dir;
	uint32_t epochs, batch;
	ibstore_policy policy;
	double ratio, lr;
	uint64_t seed, gap, stop_after;
} args;

static int rank, world;

static void usage(FILE *f)
{
	static const char *const lines[] = {
		"usage: mpirun -np N train_mpi [options] TRAIN.ibs TEST.ibs",
		"  --epochs E      epochs (default 6)",
		"  --batch B       batch size per rank (default 64)",
		"  --lr LR         learning rate (default 0.1)",
		"  --policy P      infobatch | random | none (default infobatch)",
		"  --ratio R       prune ratio (default 0.5)",
		"  --seed S        plan seed (default 0)",
		"  --gap BYTES     let the loader read through gaps up to BYTES between",
		"                  wanted records (default 0: read the slice's records only)",
		"  --run-dir DIR   keep the job's run state in DIR (DIR/run.rank<r>-of-<n>",
		"                  and, by rank 0, the model in DIR/model.bin): a job",
		"                  stopped there resumes with any -np (elastic resume);",
		"                  default: a temporary directory, removed at the end",
		"  --stop-after B  stop after B batches of this process, as a preempted",
		"                  job would (to try a resume); default: run to the end",
	};
	for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
		fprintf(f, "%s\n", lines[i]);
}

/* Prints from one rank and stops the whole job. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "train_mpi: rank %d: ", rank);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

static int parse_args(int argc, char **argv, args *a)
{
	static const struct option opts[] = {{"epochs", required_argument, NULL, 'e'},
					     {"batch", required_argument, NULL, 'b'},
					     {"lr", required_argument, NULL, 'l'},
					     {"policy", required_argument, NULL, 'p'},
					     {"ratio", required_argument, NULL, 'r'},
					     {"seed", required_argument, NULL, 's'},
					     {"run-dir", required_argument, NULL, 'd'},
					     {"gap", required_argument, NULL, 'g'},
					     {"stop-after", required_argument, NULL, 'S'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	*a = (args){.epochs = 6,
		    .batch = 64,
		    .lr = 0.1,
		    .ratio = 0.5,
		    .policy = IBSTORE_POLICY_INFOBATCH};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': a->epochs = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'b': a->batch = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'l': a->lr = strtod(optarg, NULL); break;
		case 'r': a->ratio = strtod(optarg, NULL); break;
		case 's': a->seed = strtoull(optarg, NULL, 10); break;
		case 'd': a->run_dir = optarg; break;
		case 'g': a->gap = strtoull(optarg, NULL, 10); break;
		case 'S': a->stop_after = strtoull(optarg, NULL, 10); break;
		case 'p':
			if (ibstore_policy_parse(optarg, &a->policy))
				return -1;
			break;
		case 'h': usage(stdout); return 1;
		default: return -1;
		}
	}
	if (argc - optind != 2 || !a->epochs || !a->batch || !(a->lr > 0))
		return -1;
	a->train = argv[optind];
	a->test = argv[optind + 1];
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The model: logits = W x + b, x the pixels scaled to [0, 1]              */
/* ---------------------------------------------------------------------- */

static void forward(const float *param, const uint8_t *img, float *x, float *p)
{
	const float *W = param, *b = param + OUT * IN;
	for (int j = 0; j < IN; j++)
		x[j] = img[j] * (1.0f / 255.0f);
	float max = -INFINITY;
	for (int k = 0; k < OUT; k++) {
		float z = b[k];
		for (int j = 0; j < IN; j++)
			z += W[k * IN + j] * x[j];
		p[k] = z;
		if (z > max)
			max = z;
	}
	float sum = 0;
	for (int k = 0; k < OUT; k++)
		sum += p[k] = expf(p[k] - max);
	for (int k = 0; k < OUT; k++)
		p[k] /= sum;
}

/* Adds weight * d(loss)/d(param) of one sample to grad; returns its
 * unweighted cross-entropy loss. */
static float sample_grad(const float *param, const uint8_t *img, int32_t label, float weight,
			 float *grad)
{
	float x[IN], p[OUT];
	forward(param, img, x, p);
	float loss = -logf(fmaxf(p[label], 1e-30f));
	if (ibstore_is_padding(weight))
		return loss; /* padding: no gradient */
	for (int k = 0; k < OUT; k++) {
		float d = weight * (p[k] - (k == label ? 1.0f : 0.0f));
		for (int j = 0; j < IN; j++)
			grad[k * IN + j] += d * x[j];
		grad[OUT * IN + k] += d;
	}
	return loss;
}

static double accuracy(const float *param, ibstore_dataset *ds)
{
	ibstore_info info;
	if (ibstore_dataset_info_get(ds, &info))
		die("test set: %s", ibstore_dataset_errmsg(ds));
	uint8_t img[IN];
	uint64_t right = 0;
	for (uint64_t id = 0; id < info.samples; id++) {
		size_t size;
		int32_t label;
		float x[IN], p[OUT];
		if (ibstore_dataset_read(ds, id, img, sizeof img, &size, &label) || size != IN)
			die("test sample %" PRIu64 ": %s", id, ibstore_dataset_errmsg(ds));
		forward(param, img, x, p);
		int best = 0;
		for (int k = 1; k < OUT; k++)
			if (p[k] > p[best])
				best = k;
		right += best == label;
	}
	return info.samples ? (double)right / (double)info.samples : 0.0;
}

/* ---------------------------------------------------------------------- */
/* Training                                                                */
/* ---------------------------------------------------------------------- */

/* The (id, loss) pairs this rank reported during the epoch. */
typedef struct pairs {
	uint64_t *ids;
	float *losses;
	size_t n, cap;
} pairs;

static void pairs_add(pairs *p, uint64_t id, float loss)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 4096;
		p->ids = realloc(p->ids, p->cap * sizeof *p->ids);
		p->losses = realloc(p->losses, p->cap * sizeof *p->losses);
		if (!p->ids || !p->losses)
			die("out of memory");
	}
	p->ids[p->n] = id;
	p->losses[p->n] = loss;
	p->n++;
}

static uint64_t scores_digest(const ibstore_run *run)
{
	uint64_t n, h = 0xcbf29ce484222325ull;
	const float *s = ibstore_run_scores(run, &n);
	const unsigned char *b = (const unsigned char *)s;
	for (size_t i = 0; s && i < n * sizeof *s; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

typedef struct totals {
	uint64_t samples, bytes_read, read_around;
} totals;

/* The model file of a run directory, written by rank 0 through a temporary
 * name whenever the run state commits, so a resume finds the parameters
 * that go with the run's resume point. */
static void save_model(const char *dir, const float *param)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof tmp, "%s/model.bin.tmp", dir);
	snprintf(path, sizeof path, "%s/model.bin", dir);
	FILE *f = fopen(tmp, "wb");
	if (!f || fwrite(param, sizeof *param, NPARAM, f) != NPARAM || fflush(f) ||
	    fsync(fileno(f)) || fclose(f) || rename(tmp, path))
		die("saving the model to %s: %s", path, strerror(errno));
}

/* 1 when the run directory holds a model (then read into param). */
static int load_model(const char *dir, float *param)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/model.bin", dir);
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno != ENOENT)
			die("%s: %s", path, strerror(errno));
		return 0;
	}
	size_t n = fread(param, sizeof *param, NPARAM, f);
	fclose(f);
	if (n != NPARAM)
		die("%s is not a model of %d parameters", path, NPARAM);
	return 1;
}

/* Where the model goes when the run commits (dir NULL: nowhere), and how
 * many more batches this process trains (stop_after; 0: no limit). */
typedef struct saving {
	const char *dir;
	uint64_t committed;
	uint64_t left;
	int limited, stopped;
} saving;

/* After a batch's update: the model to disk when the run state committed. */
static void after_batch(const ibstore_run *run, const float *param, saving *sv)
{
	ibstore_run_info ri;
	if (ibstore_run_info_get(run, &ri))
		die("run info: %s", ibstore_run_errmsg(run));
	if (sv->dir && rank == 0 && ri.committed != sv->committed)
		save_model(sv->dir, param);
	sv->committed = ri.committed;
	if (sv->limited && --sv->left == 0)
		sv->stopped = 1;
}

/* One epoch: returns the global mean training loss. */
static double train_epoch(ibstore_loader *l, ibstore_run *run, uint32_t epoch, float *param,
			  double lr, pairs *mine, totals *t, ibstore_epoch_info *info, saving *sv)
{
	static float grad[NPARAM + 1]; /* + 1: the sample count rides along */
	float *losses = NULL;
	size_t losses_cap = 0;
	double loss_sum = 0, loss_n = 0;
	if (ibstore_loader_epoch_begin(l, epoch, info))
		die("epoch %" PRIu32 ": %s", epoch, ibstore_loader_errmsg(l));
	mine->n = 0;
	for (;;) {
		const ibstore_batch *b;
		if (ibstore_loader_next(l, &b))
			die("epoch %" PRIu32 ": %s", epoch, ibstore_loader_errmsg(l));
		if (!b)
			break;
		if (b->sample_size != IN)
			die("samples are not %d bytes of pixels", IN);
		if (b->n > losses_cap) {
			losses_cap = b->n;
			if (!(losses = realloc(losses, losses_cap * sizeof *losses)))
				die("out of memory");
		}
		memset(grad, 0, sizeof grad);
		for (size_t i = 0; i < b->n; i++) {
			losses[i] = sample_grad(param, b->data + i * IN, b->labels[i],
						b->weights[i], grad);
			if (ibstore_is_padding(b->weights[i]))
				continue; /* padding: another rank owns the sample */
			pairs_add(mine, b->ids[i], losses[i]);
			loss_sum += losses[i];
			loss_n++;
			grad[NPARAM] += 1.0f;
		}
		if (ibstore_loader_report(l, b, losses))
			die("report: %s", ibstore_loader_errmsg(l));
		ibstore_loader_release(l, b);
		/* data parallelism: the mean gradient over every rank's batch */
		if (MPI_Allreduce(MPI_IN_PLACE, grad, NPARAM + 1, MPI_FLOAT, MPI_SUM,
				  MPI_COMM_WORLD) != MPI_SUCCESS)
			die("MPI_Allreduce of the gradient failed");
		if (grad[NPARAM] > 0)
			for (int k = 0; k < NPARAM; k++)
				param[k] -= (float)lr * grad[k] / grad[NPARAM];
		after_batch(run, param, sv);
		if (sv->stopped) { /* as if preempted: no exchange, no epoch end */
			free(losses);
			return 0.0;
		}
	}
	free(losses);

	/* every rank's losses reach every rank before the next plan */
	char msg[512];
	if (ibstore_run_exchange_mpi(run, mine->ids, mine->losses, mine->n, MPI_COMM_WORLD, msg,
				     sizeof msg))
		die("loss exchange: %s", msg);
	ibstore_loader_stats st;
	if (ibstore_loader_epoch_end(l) || ibstore_loader_stats_get(l, &st))
		die("epoch end: %s", ibstore_loader_errmsg(l));
	if (sv->dir && rank == 0)
		save_model(sv->dir, param); /* epoch_end committed */
	sv->committed = 0;
	t->samples += st.samples;
	t->bytes_read += st.bytes_read;
	t->read_around += st.read_around;

	double sums[2] = {loss_sum, loss_n};
	MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	/* MPI failures come back as values, reported by die() */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);

	args a;
	int prc = parse_args(argc, argv, &a);
	if (prc) {
		if (rank == 0 && prc < 0)
			usage(stderr);
		MPI_Finalize();
		return prc < 0 ? 2 : 0;
	}

	ibstore_dataset *train = NULL, *test = NULL;
	if (ibstore_dataset_open(a.train, &train))
		die("%s", ibstore_dataset_errmsg(train));
	ibstore_info info;
	ibstore_dataset_info_get(train, &info);
	/* copies on several machines must be one dataset (a copy, not a
	 * re-pack): the same UUID everywhere */
	uint8_t uuid0[16];
	memcpy(uuid0, info.uuid, sizeof uuid0);
	MPI_Bcast(uuid0, sizeof uuid0, MPI_BYTE, 0, MPI_COMM_WORLD);
	if (memcmp(uuid0, info.uuid, sizeof uuid0) != 0) /* MPI_Abort ends every rank */
		die("%s is not the dataset rank 0 opened (another UUID)", a.train);

	/* this rank's run state */
	char tmpdir[] = "/tmp/train_mpi.XXXXXX", path[4096];
	const char *made = NULL;
	if (!a.run_dir) {
		if (!mkdtemp(tmpdir))
			die("mkdtemp: %s", strerror(errno));
		made = tmpdir;
	}
	const char *rundir = made ? made : a.run_dir;
	snprintf(path, sizeof path, "%s/run", rundir);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.prune.policy = a.policy;
	ro.prune.ratio = a.ratio;
	ro.prune.epochs = a.epochs;
	ro.prune.seed = a.seed;
	ro.samples = info.samples;
	ro.batch_size = a.batch;
	ro.rank = (uint32_t)rank;
	ro.world = (uint32_t)world;
	ibstore_run *run = NULL;
	/* this rank's file of the job; a job stopped with another -np resumes
	 * at the first sample all its ranks trained */
	if (ibstore_run_open_elastic(path, &ro, &run))
		die("run state %s: %s", path, ibstore_run_errmsg(run));
	snprintf(path, sizeof path, "%s", ibstore_run_file(run));
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.gap = a.gap; /* 0: no byte of another rank's samples is requested */
	ibstore_loader *l = NULL;
	if (ibstore_loader_open(train, run, &lo, &l))
		die("loader: %s", ibstore_loader_errmsg(l));
	if (rank == 0 && ibstore_dataset_open(a.test, &test))
		die("%s", ibstore_dataset_errmsg(test));

	static float param[NPARAM]; /* zeros: the same start on every rank */
	int resumed = a.run_dir && load_model(a.run_dir, param);
	ibstore_run_info ri;
	if (ibstore_run_info_get(run, &ri))
		die("run info: %s", ibstore_run_errmsg(run));
	uint32_t first = ri.in_epoch ? ri.epoch : ri.epochs_done;
	saving sv = {.dir = a.run_dir, .committed = ri.committed, .left = a.stop_after,
		     .limited = a.stop_after > 0};
	pairs mine = {0};
	totals t = {0};
	if (rank == 0 && (resumed || first))
		printf("resuming at epoch %" PRIu32 ", plan position %" PRIu64
		       " (run state generation %" PRIu32 ")%s\n",
		       first, ri.start, ri.generation, resumed ? ", model from model.bin" : "");
	if (rank == 0)
		printf("%d ranks, %" PRIu64 " training samples, batch %" PRIu32
		       " per rank\nepoch   kept  pruned  slice/rank  train loss  test acc  scores\n",
		       world, info.samples, a.batch);
	double acc = 0;
	for (uint32_t e = first; e < a.epochs && !sv.stopped; e++) {
		ibstore_epoch_info ei;
		double loss = train_epoch(l, run, e, param, a.lr, &mine, &t, &ei, &sv);
		if (sv.stopped) {
			if (rank == 0)
				printf("stopped in epoch %" PRIu32 " after %" PRIu64
				       " batches; resume with the same --run-dir and any -np\n",
				       e, a.stop_after);
			break;
		}
		/* the invariant the exchange keeps: identical scores everywhere */
		uint64_t h = scores_digest(run), hmin, hmax;
		MPI_Allreduce(&h, &hmin, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
		MPI_Allreduce(&h, &hmax, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
		if (hmin != hmax)
			die("epoch %" PRIu32 ": the ranks' scores differ after the exchange", e);
		if (rank == 0) {
			acc = accuracy(param, test);
			printf("%5" PRIu32 " %6" PRIu64 " %7" PRIu64 " %11" PRIu64
			       " %11.4f %8.2f%%  identical on %d ranks\n",
			       e, ei.plan.kept, ei.plan.pruned, ei.samples, loss, 100 * acc, world);
			fflush(stdout);
		}
	}

	/* what each rank read, printed by rank 0 in rank order */
	uint64_t mystat[3] = {t.samples, t.bytes_read, t.read_around};
	uint64_t *all = rank == 0 ? malloc((size_t)world * sizeof mystat) : NULL;
	if (rank == 0 && !all)
		die("out of memory");
	MPI_Gather(mystat, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		printf("rank  samples read  MiB read  MiB read around (of no wanted record)\n");
		for (int r = 0; r < world; r++)
			printf("%4d %13" PRIu64 " %9.1f %16.1f\n", r, all[3 * r],
			       (double)all[3 * r + 1] / 1048576.0,
			       (double)all[3 * r + 2] / 1048576.0);
		printf("final test accuracy %.2f%%\n", 100 * acc);
		free(all);
	}

	free(mine.ids);
	free(mine.losses);
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(train);
	ibstore_dataset_close(test);
	if (made) {
		unlink(path);
		MPI_Barrier(MPI_COMM_WORLD); /* every rank's file gone before the directory */
		if (rank == 0)
			rmdir(made);
	}
	MPI_Finalize();
	return 0;
}
