/*
 * train_fmnist.c — a small pure-C trainer that streams Fashion-MNIST from an
 * ibstore dataset through the public C API and trains a one-hidden-layer MLP
 * (784 -> 128 ReLU -> 10, softmax cross-entropy, SGD with momentum, float32)
 * under a pruning policy (none, infobatch or random).
 *
 * It is the C version of InfoBatch's "3 lines of change": per batch it
 * reports each sample's unweighted loss to the loader (the scores of the next
 * epoch's plan), and it trains on mean(weight_i * loss_i) over the batch —
 * divided by the batch size, not by the weight sum — so sample i's gradient
 * is scaled by weight_i / n.  After every epoch it evaluates on a test
 * dataset read with ibstore_dataset_read().
 *
 * The arithmetic does not depend on the number of threads: the forward pass
 * is split by samples and the first layer's gradient by input pixels, each
 * sum always taken in the same order, so --threads changes speed only.
 *
 * With --run PATH the run state survives the process, and the model (with
 * its momentum) is saved beside it at PATH.model after every epoch; running
 * the same command again continues the run where it stopped.  The run state
 * is committed only at epoch boundaries, so a run killed mid-epoch replays
 * that whole epoch from the same plan, with the model of its start.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ibstore.h"

#define IN 784  /* 28 x 28 pixels */
#define HID 128 /* a multiple of 32 (sparse_axpy) */
#define OUT 10
#define MAX_THREADS 64
#define EVAL_CHUNK 256

#define EXIT_USAGE 2

#define MODEL_MAGIC "IBTRAIN1"

/* ---------------------------------------------------------------------- */
/* Command line                                                            */
/* ---------------------------------------------------------------------- */

typedef struct args {
	const char *train, *test, *run;
	uint32_t epochs, stop_after, batch;
	ibstore_policy policy;
	double ratio, delta, lr, momentum;
	int cosine;
	uint64_t seed;
	unsigned threads;
	int json;
	int64_t gap; /* loader read-through gap; -1: the library's default */
	ibstore_order order;
} args;

static void usage(FILE *f)
{
	fputs("Usage: train_fmnist --train DATASET --test DATASET [options]\n"
	      "\n"
	      "Trains a 784-128-10 MLP (ReLU, softmax cross-entropy, SGD with momentum)\n"
	      "on Fashion-MNIST streamed from the ibstore dataset --train, pruning each\n"
	      "epoch with --policy, and evaluates on --test after every epoch.  Prints\n"
	      "one line per epoch (test accuracy, samples read, bytes read and skipped,\n"
	      "seconds) and a final \"summary key=value ...\" line.\n"
	      "\n"
	      "Options:\n"
	      "  --train DS        training dataset (28x28 uint8 images, labels 0..9)\n"
	      "  --test DS         test dataset (same shape)\n"
	      "  --epochs C        total epochs of the run (default 10)\n"
	      "  --policy P        none, infobatch (default) or random\n"
	      "  --ratio R         prune ratio (default 0.5)\n"
	      "  --delta D         share of epochs that prune (default 0.875)\n"
	      "  --batch B         batch size (default 128)\n"
	      "  --lr LR           learning rate (default 0.05)\n"
	      "  --momentum M      SGD momentum in [0, 1) (default 0.9)\n"
	      "  --schedule S      cosine (default: lr decays per epoch to ~0) or const\n"
	      "  --seed S          seed of the model's initialisation and of the plans\n"
	      "                    (default 0)\n"
	      "  --run PATH        run state file, created if missing, continued if it\n"
	      "                    exists (the model is kept at PATH.model); default: a\n"
	      "                    temporary file removed at exit\n"
	      "  --stop-after K    stop after K epochs of this invocation (continue the\n"
	      "                    run later with the same command)\n"
	      "  --threads T       compute threads (default 2; results do not depend on T)\n"
	      "  --gap BYTES       loader: read through gaps of up to BYTES between wanted\n"
	      "                    records (default: the library's, 32 KiB); 0 reads only\n"
	      "                    wanted records, so pruned bytes are never requested\n"
	      "  --order O         loader: random (default) or locality\n"
	      "  --json            print JSON lines instead of text\n"
	      "  -h, --help        show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 failure, 2 wrong arguments.\n",
	      f);
}

static int usage_error(const char *fmt, const char *what)
{
	fputs("train_fmnist: ", stderr);
	fprintf(stderr, fmt, what);
	fputs("\nTry 'train_fmnist --help'.\n", stderr);
	return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || errno || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* Returns 0, or EXIT_USAGE after a message; -1 when help was printed. */
static int parse_args(int argc, char **argv, args *a)
{
	enum {
		O_TRAIN = 256,
		O_TEST,
		O_EPOCHS,
		O_POLICY,
		O_RATIO,
		O_DELTA,
		O_BATCH,
		O_LR,
		O_MOMENTUM,
		O_SCHEDULE,
		O_SEED,
		O_RUN,
		O_STOP,
		O_THREADS,
		O_JSON,
		O_GAP,
		O_ORDER
	};
	static const struct option lopts[] = {
		{"train", required_argument, NULL, O_TRAIN},
		{"test", required_argument, NULL, O_TEST},
		{"epochs", required_argument, NULL, O_EPOCHS},
		{"policy", required_argument, NULL, O_POLICY},
		{"ratio", required_argument, NULL, O_RATIO},
		{"delta", required_argument, NULL, O_DELTA},
		{"batch", required_argument, NULL, O_BATCH},
		{"lr", required_argument, NULL, O_LR},
		{"momentum", required_argument, NULL, O_MOMENTUM},
		{"schedule", required_argument, NULL, O_SCHEDULE},
		{"seed", required_argument, NULL, O_SEED},
		{"run", required_argument, NULL, O_RUN},
		{"stop-after", required_argument, NULL, O_STOP},
		{"threads", required_argument, NULL, O_THREADS},
		{"json", no_argument, NULL, O_JSON},
		{"gap", required_argument, NULL, O_GAP},
		{"order", required_argument, NULL, O_ORDER},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t u;
	int opt;

	memset(a, 0, sizeof(*a));
	a->epochs = 10;
	a->policy = IBSTORE_POLICY_INFOBATCH;
	a->ratio = 0.5;
	a->delta = 0.875;
	a->batch = 128;
	a->lr = 0.05;
	a->momentum = 0.9;
	a->cosine = 1;
	a->threads = 2;
	a->gap = -1;
	a->order = IBSTORE_ORDER_RANDOM;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case O_TRAIN: a->train = optarg; break;
		case O_TEST: a->test = optarg; break;
		case O_RUN: a->run = optarg; break;
		case O_JSON: a->json = 1; break;
		case 'h': usage(stdout); return -1;
		case O_EPOCHS:
			if (parse_u64(optarg, 1, 100000, &u))
				return usage_error(
					"--epochs needs an integer in 1..100000, not '%s'", optarg);
			a->epochs = (uint32_t)u;
			break;
		case O_STOP:
			if (parse_u64(optarg, 1, 100000, &u))
				return usage_error("--stop-after needs an integer >= 1, not '%s'",
						   optarg);
			a->stop_after = (uint32_t)u;
			break;
		case O_BATCH:
			if (parse_u64(optarg, 1, 65536, &u))
				return usage_error("--batch needs an integer in 1..65536, not '%s'",
						   optarg);
			a->batch = (uint32_t)u;
			break;
		case O_THREADS:
			if (parse_u64(optarg, 1, MAX_THREADS, &u))
				return usage_error("--threads needs an integer in 1..64, not '%s'",
						   optarg);
			a->threads = (unsigned)u;
			break;
		case O_GAP:
			if (parse_u64(optarg, 0, (uint64_t)1 << 40, &u))
				return usage_error("--gap needs a byte count, not '%s'", optarg);
			a->gap = (int64_t)u;
			break;
		case O_ORDER:
			if (ibstore_order_parse(optarg, &a->order))
				return usage_error("--order must be random or locality, not '%s'",
						   optarg);
			break;
		case O_SEED:
			if (parse_u64(optarg, 0, UINT64_MAX, &u))
				return usage_error("--seed needs a non-negative integer, not '%s'",
						   optarg);
			a->seed = u;
			break;
		case O_POLICY:
			if (ibstore_policy_parse(optarg, &a->policy))
				return usage_error(
					"--policy must be none, infobatch or random, not '%s'",
					optarg);
			break;
		case O_SCHEDULE:
			if (strcmp(optarg, "cosine") && strcmp(optarg, "const"))
				return usage_error("--schedule must be cosine or const, not '%s'",
						   optarg);
			a->cosine = !strcmp(optarg, "cosine");
			break;
		case O_RATIO:
			if (parse_double(optarg, &a->ratio))
				return usage_error("--ratio needs a number, not '%s'", optarg);
			break;
		case O_DELTA:
			if (parse_double(optarg, &a->delta))
				return usage_error("--delta needs a number, not '%s'", optarg);
			break;
		case O_LR:
			if (parse_double(optarg, &a->lr) || a->lr <= 0)
				return usage_error("--lr needs a positive number, not '%s'",
						   optarg);
			break;
		case O_MOMENTUM:
			if (parse_double(optarg, &a->momentum) || a->momentum < 0 ||
			    a->momentum >= 1)
				return usage_error("--momentum needs a number in [0, 1), not '%s'",
						   optarg);
			break;
		case '?':
		default:
			if (optopt)
				return usage_error("option --%s needs an argument or is unknown",
						   argv[optind - 1] + 2);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!a->train)
		return usage_error("%s", "--train DATASET is required");
	if (!a->test)
		return usage_error("%s", "--test DATASET is required");
	return 0;
}

/* ---------------------------------------------------------------------- */
/* A tiny fork-join pool of pthreads                                       */
/* ---------------------------------------------------------------------- */

typedef void (*job_fn)(void *ctx, unsigned part, unsigned parts);

typedef struct pool pool;
typedef struct worker {
	pool *p;
	unsigned part;
	pthread_t tid;
} worker;

struct pool {
	unsigned parts; /* the caller's thread is part 0 */
	worker w[MAX_THREADS];
	unsigned started;
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t gen;
	unsigned pending;
	int quit;
	job_fn fn;
	void *ctx;
};

static void *worker_main(void *arg)
{
	worker *w = arg;
	pool *p = w->p;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->quit && p->gen == seen) /* woken by pool_run, pool_stop */
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		p->fn(p->ctx, w->part, p->parts);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pool_stop(pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->started; i++)
		pthread_join(p->w[i].tid, NULL);
	p->started = 0;
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
}

static int pool_start(pool *p, unsigned threads)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	p->parts = threads;
	for (unsigned i = 0; i + 1 < threads; i++) {
		p->w[i].p = p;
		p->w[i].part = i + 1;
		if (pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i])) {
			pool_stop(p);
			return -1;
		}
		p->started++;
	}
	return 0;
}

/* Runs fn(ctx, part, parts) for every part, the caller taking part 0. */
static void pool_run(pool *p, job_fn fn, void *ctx)
{
	if (p->parts == 1) {
		fn(ctx, 0, 1);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->pending = p->parts - 1;
	p->gen++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, p->parts);
	pthread_mutex_lock(&p->mu);
	while (p->pending) /* woken by the worker that finishes last */
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static size_t part_begin(size_t n, unsigned part, unsigned parts)
{
	return n * part / parts;
}

/* ---------------------------------------------------------------------- */
/* The model                                                               */
/* ---------------------------------------------------------------------- */

/* Parameters, and their momentum buffers in the same layout. */
typedef struct params {
	float w1[IN * HID]; /* [IN, HID]: row k holds pixel k's outgoing weights */
	float b1[HID];
	float w2[HID * OUT]; /* [HID, OUT] */
	float b2[OUT];
} params;

typedef struct model {
	params p, v;
	uint32_t epochs_done; /* saved with the checkpoint */
} model;

static const float INV255 = 1.0f / 255.0f;

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [-a, a). */
static float uniform(uint64_t *s, float a)
{
	double u = (double)(splitmix64(s) >> 11) * 0x1.0p-53;
	return (float)((2.0 * u - 1.0) * a);
}

/* He-uniform for the ReLU layer, Glorot-uniform for the output layer. */
static void model_init(model *m, uint64_t seed)
{
	uint64_t s = seed ^ 0x7261696E666D6E69ull; /* distinct from the plans' use */
	float a1 = sqrtf(6.0f / IN), a2 = sqrtf(6.0f / (HID + OUT));

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < IN * HID; i++)
		m->p.w1[i] = uniform(&s, a1);
	for (size_t i = 0; i < HID * OUT; i++)
		m->p.w2[i] = uniform(&s, a2);
}

/*
 * out[0..HID) += sum_t val[t] * rows[idx[t]][0..HID), t in order: the one
 * kernel of both big products.  Columns go in chunks of 32 held in eight
 * 4-float vectors (GCC/clang vector extension, plain SSE2 on x86-64) so the
 * accumulators stay in registers while the sparse rows stream by.
 */
_Static_assert(HID % 32 == 0, "sparse_axpy works in chunks of 32 columns");
typedef float v4 __attribute__((vector_size(16)));

static inline v4 load4(const float *p)
{
	v4 v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void store4(float *p, v4 v)
{
	memcpy(p, &v, sizeof(v));
}

static void sparse_axpy(float *out, const float *rows, const uint16_t *idx, const float *val,
			size_t nnz)
{
	for (size_t c = 0; c < HID; c += 32) {
		v4 a0 = load4(out + c), a1 = load4(out + c + 4), a2 = load4(out + c + 8),
		   a3 = load4(out + c + 12), a4 = load4(out + c + 16), a5 = load4(out + c + 20),
		   a6 = load4(out + c + 24), a7 = load4(out + c + 28);
		for (size_t t = 0; t < nnz; t++) {
			const float *r = rows + (size_t)idx[t] * HID + c;
			const v4 x = {val[t], val[t], val[t], val[t]};
			a0 += x * load4(r);
			a1 += x * load4(r + 4);
			a2 += x * load4(r + 8);
			a3 += x * load4(r + 12);
			a4 += x * load4(r + 16);
			a5 += x * load4(r + 20);
			a6 += x * load4(r + 24);
			a7 += x * load4(r + 28);
		}
		store4(out + c, a0);
		store4(out + c + 4, a1);
		store4(out + c + 8, a2);
		store4(out + c + 12, a3);
		store4(out + c + 16, a4);
		store4(out + c + 20, a5);
		store4(out + c + 24, a6);
		store4(out + c + 28, a7);
	}
}

/* Hidden activations of samples [i0, i1): h = relu(x W1 + b1), over the
 * non-zero pixels only (about half of Fashion-MNIST's are zero). */
static void hidden_rows(const params *p, const uint8_t *x, size_t i0, size_t i1, float *h)
{
	uint16_t idx[IN];
	float val[IN];

	for (size_t i = i0; i < i1; i++) {
		const uint8_t *xi = x + i * IN;
		float *hi = h + i * HID;
		size_t nnz = 0;
		for (size_t k = 0; k < IN; k++) {
			if (xi[k]) {
				idx[nnz] = (uint16_t)k;
				val[nnz++] = (float)xi[k] * INV255;
			}
		}
		memcpy(hi, p->b1, sizeof(p->b1));
		sparse_axpy(hi, p->w1, idx, val, nnz);
		for (size_t j = 0; j < HID; j++)
			hi[j] = hi[j] > 0.0f ? hi[j] : 0.0f;
	}
}

/* Logits of sample i's hidden activations. */
static void logits(const params *p, const float *h, float *z)
{
	memcpy(z, p->b2, sizeof(p->b2));
	for (size_t j = 0; j < HID; j++) {
		if (h[j] == 0.0f)
			continue;
		const float *w = p->w2 + j * OUT;
		for (size_t o = 0; o < OUT; o++)
			z[o] += h[j] * w[o];
	}
}

typedef struct forward_job {
	const params *p;
	const uint8_t *x;
	size_t n;
	float *h;
} forward_job;

static void forward_part(void *ctx, unsigned part, unsigned parts)
{
	forward_job *j = ctx;
	hidden_rows(j->p, j->x, part_begin(j->n, part, parts), part_begin(j->n, part + 1, parts),
		    j->h);
}

/* First layer's gradient and momentum step, split by input pixel: row k of
 * dW1 is sum_i x[i][k] * dh[i], in sample order whatever the split. */
typedef struct backward_job {
	params *p, *v;
	const uint8_t *xt; /* [IN, n]: the batch transposed */
	const float *dh;   /* [n, HID] */
	size_t n;
	float lr, mu;
	uint16_t *idx; /* per part: cap entries each */
	float *val;
	size_t cap;
} backward_job;

static void backward_part(void *ctx, unsigned part, unsigned parts)
{
	backward_job *j = ctx;
	size_t k0 = part_begin(IN, part, parts), k1 = part_begin(IN, part + 1, parts);
	float g[HID];

	for (size_t k = k0; k < k1; k++) {
		const uint8_t *xk = j->xt + k * j->n;
		uint16_t *idx = j->idx + part * j->cap;
		float *val = j->val + part * j->cap;
		size_t nnz = 0;
		for (size_t i = 0; i < j->n; i++) {
			if (xk[i]) {
				idx[nnz] = (uint16_t)i;
				val[nnz++] = (float)xk[i] * INV255;
			}
		}
		memset(g, 0, sizeof(g));
		sparse_axpy(g, j->dh, idx, val, nnz);
		float *w = j->p->w1 + k * HID, *v = j->v->w1 + k * HID;
		for (size_t c = 0; c < HID; c++) {
			v[c] = j->mu * v[c] + g[c];
			w[c] -= j->lr * v[c];
		}
	}
}

/* Buffers of one batch, sized once for the largest batch. */
typedef struct scratch {
	size_t cap;
	float *h, *dh, *dz, *loss;
	uint8_t *xt;
	uint16_t *idx; /* non-zero lists of the backward pass, cap per thread */
	float *val;
} scratch;

static int scratch_alloc(scratch *s, size_t cap, unsigned threads)
{
	s->cap = cap;
	s->h = malloc(cap * HID * sizeof(float));
	s->dh = malloc(cap * HID * sizeof(float));
	s->dz = malloc(cap * OUT * sizeof(float));
	s->loss = malloc(cap * sizeof(float));
	s->xt = malloc(cap * IN);
	s->idx = malloc(cap * threads * sizeof(uint16_t));
	s->val = malloc(cap * threads * sizeof(float));
	return s->h && s->dh && s->dz && s->loss && s->xt && s->idx && s->val ? 0 : -1;
}

static void scratch_free(scratch *s)
{
	free(s->h);
	free(s->dh);
	free(s->dz);
	free(s->loss);
	free(s->xt);
	free(s->idx);
	free(s->val);
}

/*
 * One SGD step on n samples x (dense [n, IN] uint8) with labels y and
 * weights w.  Writes each sample's unweighted cross-entropy to s->loss and
 * returns the training loss mean(w_i * loss_i).
 */
static double train_step(model *m, pool *tp, scratch *s, const uint8_t *x, const int32_t *y,
			 const float *w, size_t n, float lr, float mu)
{
	params *p = &m->p, *v = &m->v;
	forward_job fj = {p, x, n, s->h};
	double wloss = 0;
	float g2[HID * OUT], gb2[OUT], gb1[HID];

	pool_run(tp, forward_part, &fj);

	/* softmax cross-entropy; dz = (softmax - onehot) * w_i / n */
	for (size_t i = 0; i < n; i++) {
		float z[OUT], mx, sum = 0;
		float *dz = s->dz + i * OUT;
		logits(p, s->h + i * HID, z);
		mx = z[0];
		for (size_t o = 1; o < OUT; o++)
			mx = z[o] > mx ? z[o] : mx;
		for (size_t o = 0; o < OUT; o++) {
			dz[o] = expf(z[o] - mx);
			sum += dz[o];
		}
		s->loss[i] = logf(sum) + mx - z[y[i]];
		wloss += (double)w[i] * s->loss[i];
		const float scale = w[i] / (float)n;
		for (size_t o = 0; o < OUT; o++)
			dz[o] = dz[o] / sum * scale;
		dz[y[i]] -= scale;
	}

	/* output layer gradients, and dh = dz W2^T masked by the ReLU */
	memset(g2, 0, sizeof(g2));
	memset(gb2, 0, sizeof(gb2));
	memset(gb1, 0, sizeof(gb1));
	for (size_t i = 0; i < n; i++) {
		const float *hi = s->h + i * HID, *dz = s->dz + i * OUT;
		float *dhi = s->dh + i * HID;
		for (size_t o = 0; o < OUT; o++)
			gb2[o] += dz[o];
		for (size_t j = 0; j < HID; j++) {
			const float *w2 = p->w2 + j * OUT;
			float *g = g2 + j * OUT, d = 0;
			if (hi[j] == 0.0f) {
				dhi[j] = 0.0f;
				continue;
			}
			for (size_t o = 0; o < OUT; o++) {
				g[o] += hi[j] * dz[o];
				d += dz[o] * w2[o];
			}
			dhi[j] = d;
			gb1[j] += d;
		}
	}

	/* transpose the batch for the first layer's gradient */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < IN; k++)
			s->xt[k * n + i] = x[i * IN + k];

	for (size_t i = 0; i < HID * OUT; i++) {
		v->w2[i] = mu * v->w2[i] + g2[i];
		p->w2[i] -= lr * v->w2[i];
	}
	for (size_t o = 0; o < OUT; o++) {
		v->b2[o] = mu * v->b2[o] + gb2[o];
		p->b2[o] -= lr * v->b2[o];
	}
	for (size_t j = 0; j < HID; j++) {
		v->b1[j] = mu * v->b1[j] + gb1[j];
		p->b1[j] -= lr * v->b1[j];
	}
	backward_job bj = {p, v, s->xt, s->dh, n, lr, mu, s->idx, s->val, s->cap};
	pool_run(tp, backward_part, &bj);
	return wloss / (double)n;
}

/* The test set, decoded once. */
typedef struct testset {
	size_t n;
	uint8_t *x;
	int32_t *y;
} testset;

static double evaluate(const model *m, pool *tp, const testset *t, float *h)
{
	size_t correct = 0;

	for (size_t b = 0; b < t->n; b += EVAL_CHUNK) {
		size_t n = t->n - b < EVAL_CHUNK ? t->n - b : EVAL_CHUNK;
		forward_job fj = {&m->p, t->x + b * IN, n, h};
		pool_run(tp, forward_part, &fj);
		for (size_t i = 0; i < n; i++) {
			float z[OUT];
			size_t best = 0;
			logits(&m->p, h + i * HID, z);
			for (size_t o = 1; o < OUT; o++)
				best = z[o] > z[best] ? o : best;
			correct += (int32_t)best == t->y[b + i];
		}
	}
	return t->n ? (double)correct / (double)t->n : 0.0;
}

/* ---------------------------------------------------------------------- */
/* Model checkpoint beside the run state                                   */
/* ---------------------------------------------------------------------- */

static int model_save(const model *m, const char *path)
{
	char tmp[4096];
	FILE *f;
	int ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	if (!(f = fopen(tmp, "wb")))
		return -1;
	ok = fwrite(MODEL_MAGIC, 8, 1, f) == 1 &&
	     fwrite(&m->epochs_done, sizeof(m->epochs_done), 1, f) == 1 &&
	     fwrite(&m->p, sizeof(m->p), 1, f) == 1 && fwrite(&m->v, sizeof(m->v), 1, f) == 1;
	ok = (fflush(f) == 0) & ok;
	ok = (fsync(fileno(f)) == 0) & ok;
	ok = (fclose(f) == 0) & ok;
	if (!ok || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* 0 loaded, 1 no such file, -1 unreadable or not a checkpoint. */
static int model_load(model *m, const char *path)
{
	char magic[8];
	FILE *f = fopen(path, "rb");
	int ok;

	if (!f)
		return errno == ENOENT ? 1 : -1;
	ok = fread(magic, 8, 1, f) == 1 && !memcmp(magic, MODEL_MAGIC, 8) &&
	     fread(&m->epochs_done, sizeof(m->epochs_done), 1, f) == 1 &&
	     fread(&m->p, sizeof(m->p), 1, f) == 1 && fread(&m->v, sizeof(m->v), 1, f) == 1 &&
	     fgetc(f) == EOF;
	fclose(f);
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* Main                                                                    */
/* ---------------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int rc, const char *msg)
{
	fprintf(stderr, "train_fmnist: %s: %s%s%s\n", what, ibstore_strerror(rc),
		msg && *msg ? ": " : "", msg ? msg : "");
	return 1;
}

static int load_testset(const char *path, testset *t)
{
	ibstore_dataset *ds = NULL;
	ibstore_info info;
	int rc = ibstore_dataset_open(path, &ds), status = 1;

	if (rc) {
		fail(path, rc, ds ? ibstore_dataset_errmsg(ds) : NULL);
		goto out;
	}
	if ((rc = ibstore_dataset_info_get(ds, &info))) {
		fail(path, rc, ibstore_dataset_errmsg(ds));
		goto out;
	}
	if (info.fixed_size != IN) {
		fprintf(stderr, "train_fmnist: %s: samples are not 28x28 bytes (%" PRIu64 ")\n",
			path, info.fixed_size);
		goto out;
	}
	t->n = info.samples;
	t->x = malloc(t->n * IN + 1);
	t->y = malloc(t->n * sizeof(int32_t) + 1);
	if (!t->x || !t->y) {
		fprintf(stderr, "train_fmnist: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		rc = ibstore_dataset_read(ds, i, t->x + i * IN, IN, NULL, &t->y[i]);
		if (rc) {
			fail(path, rc, ibstore_dataset_errmsg(ds));
			goto out;
		}
		if (t->y[i] < 0 || t->y[i] >= OUT) {
			fprintf(stderr,
				"train_fmnist: %s: sample %zu has label %" PRId32 ", not 0..9\n",
				path, i, t->y[i]);
			goto out;
		}
	}
	status = 0;
out:
	ibstore_dataset_close(ds);
	return status;
}

typedef struct totals {
	uint64_t samples, bytes_read, bytes_skipped;
	double train_seconds, seconds, acc;
	uint32_t epochs;
} totals;

static const char *policy_name(ibstore_policy p)
{
	return p == IBSTORE_POLICY_NONE   ? "none" :
	       p == IBSTORE_POLICY_RANDOM ? "random" :
					    "infobatch";
}

static void print_epoch(const args *a, uint32_t e, const ibstore_loader_stats *st,
			const ibstore_epoch_info *info, double loss, double acc, double secs,
			double eval_secs)
{
	if (a->json) {
		printf("{\"type\":\"epoch\",\"policy\":\"%s\",\"epoch\":%" PRIu32
		       ",\"epochs\":%" PRIu32 ",\"prunes\":%d,\"test_accuracy\":%.4f"
		       ",\"train_loss\":%.6f,\"samples\":%" PRIu64 ",\"pruned\":%" PRIu64
		       ",\"bytes_read\":%" PRIu64 ",\"bytes_skipped\":%" PRIu64
		       ",\"seconds\":%.3f,\"eval_seconds\":%.3f}\n",
		       policy_name(a->policy), e, a->epochs, info->plan.prunes, acc, loss,
		       st->samples, info->plan.pruned, st->bytes_read, st->bytes_skipped, secs,
		       eval_secs);
	} else {
		printf("epoch %3" PRIu32 "/%" PRIu32 " %-9s acc %.4f  loss %.4f  samples %6" PRIu64
		       "  bytes_read %9" PRIu64 "  bytes_skipped %9" PRIu64 "  seconds %.2f%s\n",
		       e + 1, a->epochs, policy_name(a->policy), acc, loss, st->samples,
		       st->bytes_read, st->bytes_skipped, secs,
		       info->plan.prunes ? "" : "  (full)");
	}
	fflush(stdout);
}

static void print_summary(const args *a, const totals *t)
{
	if (a->json) {
		printf("{\"type\":\"summary\",\"policy\":\"%s\",\"epochs\":%" PRIu32
		       ",\"seed\":%" PRIu64 ",\"final_accuracy\":%.4f,\"samples\":%" PRIu64
		       ",\"bytes_read\":%" PRIu64 ",\"bytes_skipped\":%" PRIu64
		       ",\"train_seconds\":%.3f,\"seconds\":%.3f}\n",
		       policy_name(a->policy), t->epochs, a->seed, t->acc, t->samples,
		       t->bytes_read, t->bytes_skipped, t->train_seconds, t->seconds);
	} else {
		printf("summary policy=%s epochs=%" PRIu32 " seed=%" PRIu64 " final_acc=%.4f"
		       " samples=%" PRIu64 " bytes_read=%" PRIu64 " bytes_skipped=%" PRIu64
		       " train_seconds=%.2f seconds=%.2f\n",
		       policy_name(a->policy), t->epochs, a->seed, t->acc, t->samples,
		       t->bytes_read, t->bytes_skipped, t->train_seconds, t->seconds);
	}
	fflush(stdout);
}

/* Trains epochs [first, last) of the run; returns 0 or 1. */
static int train(const args *a, ibstore_loader *l, model *m, pool *tp, scratch *s, const testset *t,
		 const char *model_path, uint32_t first, uint32_t last, totals *tot)
{
	for (uint32_t e = first; e < last; e++) {
		ibstore_epoch_info info;
		ibstore_loader_stats st;
		const ibstore_batch *b;
		double t0 = now(), wloss = 0;
		uint64_t seen = 0;
		float lr = (float)a->lr;
		int rc;

		if (a->cosine)
			lr = (float)(a->lr * 0.5 * (1.0 + cos(M_PI * e / a->epochs)));
		if ((rc = ibstore_loader_epoch_begin(l, e, &info)))
			return fail("epoch_begin", rc, ibstore_loader_errmsg(l));
		while ((rc = ibstore_loader_next(l, &b)) == 0 && b) {
			if (b->n && b->sample_size != IN) {
				fprintf(stderr,
					"train_fmnist: batch %" PRIu64 " of epoch %" PRIu32
					" is not 28x28 bytes per sample\n",
					b->index, e);
				ibstore_loader_release(l, b);
				return 1;
			}
			for (size_t i = 0; i < b->n; i++) {
				if (b->labels[i] < 0 || b->labels[i] >= OUT) {
					fprintf(stderr,
						"train_fmnist: sample %" PRIu64
						" has label %" PRId32 ", not 0..9\n",
						b->ids[i], b->labels[i]);
					ibstore_loader_release(l, b);
					return 1;
				}
			}
			wloss += train_step(m, tp, s, b->data, b->labels, b->weights, b->n, lr,
					    (float)a->momentum) *
				 (double)b->n;
			seen += b->n;
			rc = ibstore_loader_report(l, b, s->loss);
			ibstore_loader_release(l, b);
			if (rc)
				return fail("report", rc, ibstore_loader_errmsg(l));
		}
		if (rc)
			return fail("next", rc, ibstore_loader_errmsg(l));
		if ((rc = ibstore_loader_epoch_end(l)))
			return fail("epoch_end", rc, ibstore_loader_errmsg(l));
		if ((rc = ibstore_loader_stats_get(l, &st)))
			return fail("stats", rc, ibstore_loader_errmsg(l));
		double t1 = now();
		double acc = evaluate(m, tp, t, s->h);
		double t2 = now();

		m->epochs_done = e + 1;
		if (model_path && model_save(m, model_path)) {
			fprintf(stderr, "train_fmnist: cannot write %s: %s\n", model_path,
				strerror(errno));
			return 1;
		}
		print_epoch(a, e, &st, &info, seen ? wloss / (double)seen : 0.0, acc, t1 - t0,
			    t2 - t1);
		tot->samples += st.samples;
		tot->bytes_read += st.bytes_read;
		tot->bytes_skipped += st.bytes_skipped;
		tot->train_seconds += t1 - t0;
		tot->seconds += t2 - t0;
		tot->acc = acc;
		tot->epochs++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	args a;
	int rc = parse_args(argc, argv, &a), status = 1;
	ibstore_dataset *ds = NULL;
	ibstore_run *run = NULL;
	ibstore_loader *l = NULL;
	ibstore_info info;
	testset t = {0, NULL, NULL};
	scratch s = {0};
	model *m = NULL;
	pool tp;
	int pool_up = 0;
	char tmpdir[4096] = "", run_path[4096], model_path[4200];
	const char *mpath = NULL;
	totals tot;

	if (rc)
		return rc < 0 ? 0 : rc;
	memset(&tot, 0, sizeof(tot));

	ibstore_prune_opts po;
	char msg[256];
	ibstore_prune_opts_init(&po);
	po.policy = a.policy;
	po.ratio = a.ratio;
	po.delta = a.delta;
	po.epochs = a.epochs;
	po.seed = a.seed;
	if (ibstore_prune_opts_check(&po, msg, sizeof(msg)))
		return usage_error("%s", msg);

	if (load_testset(a.test, &t))
		goto out;
	if ((rc = ibstore_dataset_open(a.train, &ds))) {
		fail(a.train, rc, ds ? ibstore_dataset_errmsg(ds) : NULL);
		goto out;
	}
	if ((rc = ibstore_dataset_info_get(ds, &info))) {
		fail(a.train, rc, ibstore_dataset_errmsg(ds));
		goto out;
	}
	if (info.fixed_size != IN) {
		fprintf(stderr, "train_fmnist: %s: samples are not 28x28 bytes\n", a.train);
		goto out;
	}

	if (a.run) {
		snprintf(run_path, sizeof(run_path), "%s", a.run);
		snprintf(model_path, sizeof(model_path), "%s.model", a.run);
		mpath = model_path;
	} else {
		const char *td = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/train_fmnist.XXXXXX", td && *td ? td : "/tmp");
		if (!mkdtemp(tmpdir)) {
			fprintf(stderr, "train_fmnist: cannot create %s: %s\n", tmpdir,
				strerror(errno));
			tmpdir[0] = 0;
			goto out;
		}
		snprintf(run_path, sizeof(run_path), "%s/run", tmpdir);
	}

	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.prune = po;
	ro.samples = info.samples;
	ro.batch_size = a.batch;
	/* commit at epoch ends only, so the run and PATH.model always agree */
	ro.checkpoint_every = UINT32_MAX;
	if ((rc = ibstore_run_open(run_path, &ro, &run))) {
		fail(run_path, rc, run ? ibstore_run_errmsg(run) : NULL);
		goto out;
	}
	ibstore_run_info ri;
	if ((rc = ibstore_run_info_get(run, &ri))) {
		fail(run_path, rc, ibstore_run_errmsg(run));
		goto out;
	}

	if (!(m = malloc(sizeof(*m))) ||
	    scratch_alloc(&s, a.batch > EVAL_CHUNK ? a.batch : EVAL_CHUNK, a.threads)) {
		fprintf(stderr, "train_fmnist: out of memory\n");
		goto out;
	}
	model_init(m, a.seed);
	if (mpath && ri.epochs_done > 0) {
		int lr = model_load(m, mpath);
		if (lr) {
			fprintf(stderr, "train_fmnist: %s: %s\n", mpath,
				lr > 0 ? "missing (the run has finished epochs but no model)" :
					 "unreadable or not a model checkpoint");
			goto out;
		}
		if (m->epochs_done != ri.epochs_done) {
			fprintf(stderr,
				"train_fmnist: %s holds the model after %" PRIu32
				" epochs but %s has %" PRIu32 " finished; start a new run\n",
				mpath, m->epochs_done, run_path, ri.epochs_done);
			goto out;
		}
	}

	if (pool_start(&tp, a.threads)) {
		fprintf(stderr, "train_fmnist: cannot start threads\n");
		goto out;
	}
	pool_up = 1;

	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	if (a.gap >= 0)
		lo.gap = (uint64_t)a.gap;
	lo.order = a.order;
	if ((rc = ibstore_loader_open(ds, run, &lo, &l))) {
		fail("loader", rc, l ? ibstore_loader_errmsg(l) : NULL);
		goto out;
	}

	uint32_t first = ri.epochs_done, last = a.epochs;
	if (a.stop_after && a.stop_after < last - first)
		last = first + a.stop_after;
	if (!a.json)
		printf("train_fmnist: %s (%" PRIu64 " samples) -> test %s (%zu), policy %s, "
		       "epochs %" PRIu32 "..%" PRIu32 " of %" PRIu32 ", batch %" PRIu32
		       ", lr %g, seed %" PRIu64 ", threads %u\n",
		       a.train, info.samples, a.test, t.n, policy_name(a.policy), first + 1, last,
		       a.epochs, a.batch, a.lr, a.seed, a.threads);
	if (!a.json && first >= last)
		printf("train_fmnist: %s has finished all %" PRIu32 " epochs; evaluating only\n",
		       run_path, a.epochs);
	if (train(&a, l, m, &tp, &s, &t, mpath, first, last, &tot))
		goto out;
	if (tot.epochs == 0)
		tot.acc = evaluate(m, &tp, &t, s.h);
	print_summary(&a, &tot);
	status = 0;
out:
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	if (pool_up)
		pool_stop(&tp);
	if (tmpdir[0]) {
		unlink(run_path);
		rmdir(tmpdir);
	}
	scratch_free(&s);
	free(m);
	free(t.x);
	free(t.y);
	return status;
}
