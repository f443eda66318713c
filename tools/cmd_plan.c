/*
 * cmd_plan.c — `ibstore plan`: computes one epoch's pruning plan from a file
 * of float32 scores and prints this rank's slice ("ID WEIGHT" lines) or the
 * plan's statistics as JSON.  A way to look at what InfoBatch would do with
 * given losses, and the command the compat-mode tests drive.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "plan"

/* stdout buffer: 1.28M lines are ~15 MB of text */
#define OUT_BUF (1u << 20)

void cmd_plan_usage(FILE *f)
{
	fputs("Usage: ibstore plan --scores FILE --epoch E --epochs C [options]\n"
	      "\n"
	      "Computes the plan of epoch E (0-based) of a C-epoch run from FILE, which\n"
	      "holds N little-endian float32 scores, one per sample id (NaN = never\n"
	      "seen, native mode only).  Prints this rank's slice in order, one\n"
	      "\"ID WEIGHT\" line per entry (padding entries have weight 0).\n"
	      "\n"
	      "Options:\n"
	      "  --scores FILE      the scores (N = file size / 4)\n"
	      "  --epoch E          the epoch, 0-based\n"
	      "  --epochs C         total epochs of the run (> 0)\n"
	      "  --ratio R          prune ratio in [0, 1) (default 0.5; keep >= 0.1)\n"
	      "  --delta D          share of epochs that prune, in [0, 1] (default 0.875)\n"
	      "  --seed S           seed (default 0)\n"
	      "  --mode M           native (default) or compat (the reference package's\n"
	      "                     exact draws; scores must be finite)\n"
	      "  --policy P         infobatch (default), random or none\n"
	      "  --rank K           this rank (default 0)\n"
	      "  --world W          number of ranks (default 1)\n"
	      "  --pad              pad short slices with weight-0 repeats (default)\n"
	      "  --drop             drop the plan's tail so slices are equal instead\n"
	      "  --json             print the plan's statistics as one JSON object\n"
	      "  -h, --help         show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 failure (unreadable or bad scores), 2 wrong\n"
	      "arguments.\n",
	      f);
}

typedef struct plan_args {
	ibstore_prune_opts prune;
	const char *scores;
	uint32_t epoch;
	uint32_t rank, world;
	ibstore_slice_mode slice;
	int json;
} plan_args;

enum {
	OPT_SCORES = 256,
	OPT_EPOCH,
	OPT_RANK,
	OPT_WORLD,
	OPT_PAD,
	OPT_DROP,
	OPT_JSON,
};

/* Parses argv into *a; 0, or the exit status to return. */
static int parse_args(int argc, char **argv, plan_args *a)
{
	static const struct option longopts[] = {
		{"scores", required_argument, NULL, OPT_SCORES},
		{"epoch", required_argument, NULL, OPT_EPOCH},
		CLI_PRUNE_LONGOPTS,
		{"rank", required_argument, NULL, OPT_RANK},
		{"world", required_argument, NULL, OPT_WORLD},
		{"pad", no_argument, NULL, OPT_PAD},
		{"drop", no_argument, NULL, OPT_DROP},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt, rc, have_epoch = 0, have_epochs = 0, pad = 0, drop = 0;
	char msg[256];

	ibstore_prune_opts_init(&a->prune);
	a->rank = 0;
	a->world = 1;
	a->slice = IBSTORE_SLICE_PAD;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_SCORES: a->scores = optarg; break;
		case OPT_EPOCH:
			if (cli_parse_u32(optarg, &a->epoch))
				return cli_usage_error(CMD, "--epoch: '%s' is not an epoch number",
						       optarg);
			have_epoch = 1;
			break;
		case OPT_RANK:
			if (cli_parse_u32(optarg, &a->rank))
				return cli_usage_error(CMD, "--rank: '%s' is not a rank number",
						       optarg);
			break;
		case OPT_WORLD:
			if (cli_parse_u32(optarg, &a->world) || a->world == 0)
				return cli_usage_error(CMD, "--world: '%s' is not a count > 0",
						       optarg);
			break;
		case OPT_PAD: pad = 1; break;
		case OPT_DROP: drop = 1; break;
		case OPT_JSON: a->json = 1; break;
		case 'h': cmd_plan_usage(stdout); return -1;
		default:
			rc = cli_parse_prune_opt(CMD, opt, optarg, &a->prune);
			if (rc < 0)
				return cli_getopt_error(CMD);
			if (rc)
				return rc;
			have_epochs |= opt == CLI_OPT_EPOCHS;
			break;
		}
	}
	if (optind < argc)
		return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	if (!a->scores)
		return cli_usage_error(CMD, "--scores FILE is required");
	if (!have_epoch)
		return cli_usage_error(CMD, "--epoch E is required");
	if (!have_epochs)
		return cli_usage_error(CMD, "--epochs C is required");
	if (pad && drop)
		return cli_usage_error(CMD, "--pad and --drop exclude each other");
	if (a->rank >= a->world)
		return cli_usage_error(CMD, "--rank %" PRIu32 " is not below --world %" PRIu32,
				       a->rank, a->world);
	a->slice = drop ? IBSTORE_SLICE_DROP : IBSTORE_SLICE_PAD;
	if (ibstore_prune_opts_check(&a->prune, msg, sizeof(msg)))
		return cli_usage_error(CMD, "%s", msg);
	return 0;
}

/*
 * Reads FILE as little-endian float32s into a new array (*out, free() it;
 * non-NULL even when empty).  0, or the exit status after a message.
 */
static int read_scores(const char *path, float **out, uint64_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	float *s = NULL;

	if (!f)
		return cli_fail(CMD, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fclose(f);
		return cli_fail(CMD, "%s: not a regular file", path);
	}
	if (st.st_size % 4 != 0) {
		fclose(f);
		return cli_fail(CMD, "%s: %jd bytes is not a whole number of float32 scores", path,
				(intmax_t)st.st_size);
	}
	uint64_t count = (uint64_t)st.st_size / 4;
	if (count > SIZE_MAX / 4) {
		fclose(f);
		return cli_fail(CMD, "%s: too large", path);
	}
	b = malloc(count ? (size_t)count * 4 : 1);
	s = malloc(count ? (size_t)count * sizeof(*s) : sizeof(*s));
	if (!b || !s) {
		fclose(f);
		free(b);
		free(s);
		return cli_fail(CMD, "%s: out of memory for %" PRIu64 " scores", path, count);
	}
	if (fread(b, 4, (size_t)count, f) != count) {
		fclose(f);
		free(b);
		free(s);
		return cli_fail(CMD, "%s: short read", path);
	}
	fclose(f);
	for (uint64_t i = 0; i < count; i++) {
		const unsigned char *p = b + 4 * i;
		uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			     (uint32_t)p[3] << 24;

		memcpy(&s[i], &u, sizeof(u));
	}
	free(b);
	*out = s;
	*n = count;
	return 0;
}

static void print_json(const plan_args *a, const ibstore_plan *p, uint64_t slice)
{
	const ibstore_plan_stats *st = &p->stats;

	printf("{\"samples\":%" PRIu64 ",\"epoch\":%" PRIu32 ",\"prunes\":%s", st->samples,
	       a->epoch, st->prunes ? "true" : "false");
	printf(",\"kept\":%" PRIu64 ",\"pruned\":%" PRIu64 ",\"below_mean\":%" PRIu64
	       ",\"unseen\":%" PRIu64,
	       st->kept, st->pruned, st->below_mean, st->unseen);
	fputs(",\"threshold\":", stdout);
	cli_json_double(stdout, st->threshold);
	fputs(",\"weight_sum\":", stdout);
	cli_json_double(stdout, st->weight_sum);
	printf(",\"rank\":%" PRIu32 ",\"world\":%" PRIu32 ",\"slice\":%" PRIu64 "}\n", a->rank,
	       a->world, slice);
}

/*
 * "%.9g" of a weight, cached by bit pattern: a plan has a handful of
 * distinct weights, and printf is most of the cost of a million lines.
 */
typedef struct weight_cache {
	uint32_t bits[4];
	char text[4][24];
	size_t len[4];
	unsigned used;
} weight_cache;

static const char *weight_text(weight_cache *c, float w, size_t *len)
{
	uint32_t bits;

	memcpy(&bits, &w, sizeof(bits));
	for (unsigned i = 0; i < c->used; i++) {
		if (c->bits[i] == bits) {
			*len = c->len[i];
			return c->text[i];
		}
	}
	unsigned slot = c->used < 4 ? c->used++ : 3;
	int n = snprintf(c->text[slot], sizeof(c->text[slot]), "%.9g", (double)w);
	c->bits[slot] = bits;
	c->len[slot] = n > 0 ? (size_t)n : 0;
	*len = c->len[slot];
	return c->text[slot];
}

/* Appends the decimal digits of v at p; returns the new end. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static void print_slice(const plan_args *a, const ibstore_plan *p, uint64_t len)
{
	static char line[64 * 1024];
	weight_cache cache = {.used = 0};
	char *o = line;
	uint64_t id;
	float w;

	for (uint64_t i = 0; i < len; i++) {
		const char *wt;
		size_t wl;

		if (ibstore_plan_slice_entry(p, a->rank, a->world, a->slice, i, &id, &w))
			break; /* cannot happen: i < slice length, rank < world */
		if ((size_t)(o - line) > sizeof(line) - 64) {
			fwrite(line, 1, (size_t)(o - line), stdout);
			o = line;
		}
		o = put_u64(o, id);
		*o++ = ' ';
		wt = weight_text(&cache, w, &wl);
		memcpy(o, wt, wl);
		o += wl;
		*o++ = '\n';
	}
	fwrite(line, 1, (size_t)(o - line), stdout);
}

int cmd_plan(int argc, char **argv)
{
	char progname[] = "ibstore " CMD;
	plan_args a;
	ibstore_plan *plan = NULL;
	float *scores = NULL;
	uint64_t n = 0, slice;
	char msg[256] = "";

	memset(&a, 0, sizeof(a));
	argv[0] = progname;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if ((rc = read_scores(a.scores, &scores, &n)))
		return rc;
	rc = ibstore_plan_compute(&a.prune, a.epoch, scores, n, &plan, msg, sizeof(msg));
	free(scores);
	if (rc)
		return cli_fail(CMD, "%s: %s", a.scores, cli_errmsg(msg, rc));
	slice = ibstore_plan_slice_len(plan, a.world, a.slice);
	setvbuf(stdout, NULL, _IOFBF, OUT_BUF);
	if (a.json)
		print_json(&a, plan, slice);
	else
		print_slice(&a, plan, slice);
	ibstore_plan_free(plan);
	return CLI_EXIT_OK;
}
