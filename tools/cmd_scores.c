/*
 * cmd_scores.c — `ibstore scores`: inspects a training run's state file —
 * its pruning configuration, where the run stands, what each finished
 * epoch pruned and read, and the distribution of the current scores —
 * as text or JSON, and can export the scores as float32 for other tools.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "scores"

#define HIST_BINS 20
#define HIST_BAR 50

void cmd_scores_usage(FILE *f)
{
	fputs("Usage: ibstore scores [--json] [--export FILE] RUN\n"
	      "\n"
	      "Describes the run state file RUN: its pruning configuration, the current\n"
	      "epoch (and cursor when one is in progress), the statistics of every\n"
	      "finished epoch, and a histogram of the current per-sample scores with\n"
	      "the number never seen (NaN).  The state is locked while a training\n"
	      "process has it open; this command then fails.\n"
	      "\n"
	      "When RUN names a data-parallel job (its per-rank files RUN.rank<r>-of-<w>,\n"
	      "or RUN.g<g>... after a resume on another number of ranks), it describes\n"
	      "the job's one logical state: its newest complete set of files merged, as\n"
	      "an elastic resume on any number of ranks would continue it (the epoch,\n"
	      "the resume point in its plan, every score).  Those files are read\n"
	      "without their locks: ask while the job is stopped.\n"
	      "\n"
	      "Options:\n"
	      "  --json         print one JSON object instead of text\n"
	      "  --export FILE  also write the N scores to FILE as little-endian float32\n"
	      "                 (written to FILE.tmp, then renamed)\n"
	      "  -h, --help     show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 the state cannot be opened or FILE written,\n"
	      "2 wrong arguments.\n",
	      f);
}

/* Summary of the scores: seen (finite) ones and a histogram of them. */
typedef struct score_summary {
	uint64_t seen, unseen;
	double mean, min, max; /* NaN when nothing was seen */
	unsigned bins;         /* 0 when nothing was seen, 1 when all are equal */
	uint64_t count[HIST_BINS];
} score_summary;

static void summarize(const float *s, uint64_t n, score_summary *h)
{
	double sum = 0;
	uint64_t i;

	memset(h, 0, sizeof(*h));
	h->min = INFINITY;
	h->max = -INFINITY;
	for (i = 0; i < n; i++) {
		if (!isfinite(s[i])) {
			h->unseen++;
			continue;
		}
		h->seen++;
		sum += s[i];
		if (s[i] < h->min)
			h->min = s[i];
		if (s[i] > h->max)
			h->max = s[i];
	}
	if (h->seen == 0) {
		h->mean = h->min = h->max = NAN;
		return;
	}
	h->mean = sum / (double)h->seen;
	h->bins = h->min < h->max ? HIST_BINS : 1;
	double width = (h->max - h->min) / h->bins;
	for (i = 0; i < n; i++) {
		unsigned b = 0;

		if (!isfinite(s[i]))
			continue;
		if (h->bins > 1) {
			double x = ((double)s[i] - h->min) / width;

			b = x >= h->bins ? h->bins - 1 : (unsigned)x;
		}
		h->count[b]++;
	}
}

static double bin_lo(const score_summary *h, unsigned b)
{
	return h->min + (h->max - h->min) * b / h->bins;
}

static double bin_hi(const score_summary *h, unsigned b)
{
	return b + 1 == h->bins ? h->max : h->min + (h->max - h->min) * (b + 1) / h->bins;
}

/*
 * Calls `row` for each finished epoch's statistics, in epoch order.
 * 0, or the library's error code.
 */
typedef void (*stats_fn)(const ibstore_epoch_stats *es, int first);

static int each_epoch(const ibstore_run *run, const ibstore_run_opts *o,
		      const ibstore_run_info *info, stats_fn row)
{
	ibstore_epoch_stats es;
	uint32_t found = 0;
	int rc;

	/* the state keeps no index of finished epochs: probe each, stop once
	 * as many were found as were finished */
	for (uint32_t e = 0; e < o->prune.epochs && found < info->epochs_done; e++) {
		rc = ibstore_run_epoch_stats_get(run, e, &es);
		if (rc == IBSTORE_ENOTFOUND)
			continue;
		if (rc)
			return rc;
		row(&es, found == 0);
		found++;
	}
	return 0;
}

/* ---- text ---- */

static void text_row(const ibstore_epoch_stats *es, int first)
{
	char rd[32], sk[32], thr[32];

	if (first)
		printf("%5s %6s %10s %10s %10s %12s %14s %11s %11s %9s\n", "epoch", "prunes",
		       "kept", "pruned", "below_mean", "threshold", "weight_sum", "read", "skipped",
		       "seconds");
	if (isnan(es->plan.threshold))
		snprintf(thr, sizeof(thr), "-");
	else
		snprintf(thr, sizeof(thr), "%.6g", es->plan.threshold);
	printf("%5" PRIu32 " %6s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12s %14.1f %11s %11s "
	       "%9.2f\n",
	       es->epoch, es->plan.prunes ? "yes" : "no", es->plan.kept, es->plan.pruned,
	       es->plan.below_mean, thr, es->plan.weight_sum,
	       cli_human_bytes(es->io.bytes_read, rd, sizeof(rd)),
	       cli_human_bytes(es->io.bytes_skipped, sk, sizeof(sk)), es->io.seconds);
}

static void print_histogram(const score_summary *h)
{
	uint64_t most = 0;
	unsigned b;

	printf("scores          %" PRIu64 " seen, %" PRIu64 " never seen (NaN)\n", h->seen,
	       h->unseen);
	if (h->seen == 0)
		return;
	printf("mean            %.6g (of the seen scores)\n", h->mean);
	printf("min .. max      %.6g .. %.6g\n", h->min, h->max);
	for (b = 0; b < h->bins; b++)
		if (h->count[b] > most)
			most = h->count[b];
	putchar('\n');
	for (b = 0; b < h->bins; b++) {
		/* a non-empty bin shows at least one '#' */
		unsigned len = (unsigned)((h->count[b] * HIST_BAR + most - 1) / most);

		printf("%12.6g .. %-12.6g %10" PRIu64 " ", bin_lo(h, b), bin_hi(h, b), h->count[b]);
		while (len-- > 0)
			putchar('#');
		putchar('\n');
	}
}

/* A data-parallel job shown through its merged state (world 0: a file). */
typedef struct job {
	uint32_t world, gen;
} job;

/* The first plan position not consumed by every rank, and the plan's length. */
static void resume_point(const ibstore_run *run, const ibstore_run_opts *o,
			 const ibstore_run_info *info, uint64_t *pos, uint64_t *len)
{
	const ibstore_plan *p = ibstore_run_plan(run);
	uint64_t done = info->cursor * o->batch_size * o->world;
	*len = p ? p->len : 0;
	*pos = info->cursor >= info->batches || info->start + done > *len ? *len
									  : info->start + done;
}

static int print_text(const char *path, const ibstore_run *run, const ibstore_run_opts *o,
		      const ibstore_run_info *info, const score_summary *h, const job *jb)
{
	if (jb->world)
		printf("job             %s: %" PRIu32 " rank%s, generation %" PRIu32
		       " (its files merged: what a resume on any number of ranks continues)\n",
		       path, jb->world, jb->world == 1 ? "" : "s", jb->gen);
	else
		printf("run state       %s\n", path);
	printf("policy          %s\n", ibstore_policy_name(o->prune.policy));
	printf("mode            %s\n", ibstore_mode_name(o->prune.mode));
	printf("ratio           %g\n", o->prune.ratio);
	printf("delta           %g\n", o->prune.delta);
	if (o->prune.ema != 0.0)
		printf("ema             %g\n", o->prune.ema);
	printf("epochs          %" PRIu32 "\n", o->prune.epochs);
	printf("seed            %" PRIu64 "\n", o->prune.seed);
	printf("samples         %" PRIu64 "\n", o->samples);
	printf("batch size      %" PRIu32 "%s\n", o->batch_size,
	       o->drop_last ? " (last partial batch dropped)" : "");
	if (!jb->world)
		printf("rank/world      %" PRIu32 "/%" PRIu32 " (%s)\n", o->rank, o->world,
		       ibstore_slice_name(o->slice));
	uint64_t pos, len;
	resume_point(run, o, info, &pos, &len);
	if (info->in_epoch && jb->world)
		printf("epoch           %" PRIu32 ", in progress: plan positions 0..%" PRIu64
		       " of %" PRIu64 " trained by every rank\n", info->epoch, pos, len);
	else if (info->in_epoch)
		printf("epoch           %" PRIu32 ", in progress: %" PRIu64 " of %" PRIu64
		       " batches done (plan position %" PRIu64 " of %" PRIu64 ")\n",
		       info->epoch, info->cursor, info->batches, pos, len);
	else if (info->epochs_done == 0)
		printf("epoch           none begun\n");
	else
		printf("epoch           %" PRIu32 ", finished\n", info->epoch);
	printf("epochs done     %" PRIu32 "\n", info->epochs_done);
	if (info->generation && !jb->world)
		printf("generation      %" PRIu32 " (resumed on another number of ranks)\n",
		       info->generation);
	if (info->reports_rejected)
		printf("rejected        %" PRIu64 " loss reports (non-finite or unknown id)\n",
		       info->reports_rejected);
	putchar('\n');
	if (info->epochs_done == 0)
		printf("no finished epochs\n");
	int rc;
	if ((rc = each_epoch(run, o, info, text_row)))
		return rc;
	putchar('\n');
	print_histogram(h);
	return 0;
}

/* ---- JSON ---- */

static void json_row(const ibstore_epoch_stats *es, int first)
{
	printf("%s{\"epoch\":%" PRIu32 ",\"prunes\":%s,\"kept\":%" PRIu64 ",\"pruned\":%" PRIu64
	       ",\"below_mean\":%" PRIu64 ",\"unseen\":%" PRIu64 ",\"threshold\":",
	       first ? "" : ",", es->epoch, es->plan.prunes ? "true" : "false", es->plan.kept,
	       es->plan.pruned, es->plan.below_mean, es->plan.unseen);
	cli_json_double(stdout, es->plan.threshold);
	fputs(",\"weight_sum\":", stdout);
	cli_json_double(stdout, es->plan.weight_sum);
	printf(",\"bytes_read\":%" PRIu64 ",\"bytes_skipped\":%" PRIu64 ",\"seconds\":",
	       es->io.bytes_read, es->io.bytes_skipped);
	cli_json_double(stdout, es->io.seconds);
	putchar('}');
}

static int print_json(const ibstore_run *run, const ibstore_run_opts *o,
		      const ibstore_run_info *info, const score_summary *h, const job *jb)
{
	printf("{\"epoch\":%" PRIu32 ",\"in_epoch\":%s,\"cursor\":%" PRIu64, info->epoch,
	       info->in_epoch ? "true" : "false", info->cursor);
	if (info->in_epoch) {
		uint64_t pos, len;
		resume_point(run, o, info, &pos, &len);
		printf(",\"batches\":%" PRIu64 ",\"position\":%" PRIu64 ",\"plan_len\":%" PRIu64,
		       info->batches, pos, len);
	}
	printf(",\"generation\":%" PRIu32, info->generation);
	if (jb->world)
		printf(",\"job\":{\"world\":%" PRIu32 ",\"generation\":%" PRIu32 "}", jb->world,
		       jb->gen);
	printf(",\"epochs_done\":%" PRIu32 ",\"reports_rejected\":%" PRIu64 ",\"samples\":%" PRIu64,
	       info->epochs_done, info->reports_rejected, o->samples);
	printf(",\"config\":{\"policy\":\"%s\",\"mode\":\"%s\",\"ratio\":",
	       ibstore_policy_name(o->prune.policy), ibstore_mode_name(o->prune.mode));
	cli_json_double(stdout, o->prune.ratio);
	fputs(",\"delta\":", stdout);
	cli_json_double(stdout, o->prune.delta);
	fputs(",\"ema\":", stdout);
	cli_json_double(stdout, o->prune.ema);
	printf(",\"epochs\":%" PRIu32 ",\"seed\":%" PRIu64 ",\"samples\":%" PRIu64
	       ",\"batch_size\":%" PRIu32 ",\"drop_last\":%s,\"rank\":%" PRIu32
	       ",\"world\":%" PRIu32 ",\"slice\":\"%s\",\"checkpoint_every\":%" PRIu32 "}",
	       o->prune.epochs, o->prune.seed, o->samples, o->batch_size,
	       o->drop_last ? "true" : "false", o->rank, o->world,
	       ibstore_slice_name(o->slice), o->checkpoint_every);
	fputs(",\"epochs\":[", stdout);
	int rc;
	if ((rc = each_epoch(run, o, info, json_row)))
		return rc;
	printf("],\"scores\":{\"seen\":%" PRIu64 ",\"unseen\":%" PRIu64 ",\"mean\":", h->seen,
	       h->unseen);
	cli_json_double(stdout, h->mean);
	fputs(",\"min\":", stdout);
	cli_json_double(stdout, h->min);
	fputs(",\"max\":", stdout);
	cli_json_double(stdout, h->max);
	fputs(",\"histogram\":[", stdout);
	for (unsigned b = 0; b < h->bins; b++) {
		printf("%s{\"lo\":", b ? "," : "");
		cli_json_double(stdout, bin_lo(h, b));
		fputs(",\"hi\":", stdout);
		cli_json_double(stdout, bin_hi(h, b));
		printf(",\"count\":%" PRIu64 "}", h->count[b]);
	}
	fputs("]}}\n", stdout);
	return 0;
}

/* ---- export ---- */

/* Writes the scores as little-endian float32 to FILE.tmp, then renames. */
static int export_scores(const char *path, const float *s, uint64_t n)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	unsigned char buf[4096];
	size_t fill = 0;

	if (!tmp)
		return cli_fail(CMD, "out of memory");
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		cli_fail(CMD, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return CLI_EXIT_FAIL;
	}
	int ok = 1;
	for (uint64_t i = 0; i < n && ok; i++) {
		uint32_t u;

		memcpy(&u, &s[i], sizeof(u));
		buf[fill++] = (unsigned char)u;
		buf[fill++] = (unsigned char)(u >> 8);
		buf[fill++] = (unsigned char)(u >> 16);
		buf[fill++] = (unsigned char)(u >> 24);
		if (fill == sizeof(buf)) {
			ok = fwrite(buf, 1, fill, f) == fill;
			fill = 0;
		}
	}
	if (ok && fill > 0)
		ok = fwrite(buf, 1, fill, f) == fill;
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f))
		ok = 0;
	if (!ok || rename(tmp, path)) {
		cli_fail(CMD, "%s: %s", ok ? path : tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		return CLI_EXIT_FAIL;
	}
	free(tmp);
	fprintf(stderr, "ibstore %s: wrote %" PRIu64 " scores (%" PRIu64 " bytes) to %s\n", CMD, n,
		n * 4, path);
	return 0;
}

int cmd_scores(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"export", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char progname[] = "ibstore " CMD;
	const char *path, *export_path = NULL;
	ibstore_run *run = NULL;
	ibstore_run_opts opts;
	ibstore_run_info info;
	score_summary *h = NULL;
	const float *scores;
	uint64_t n = 0;
	int json = 0, opt, rc, status = CLI_EXIT_FAIL;

	argv[0] = progname;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = 1; break;
		case 'e':
			if (optarg[0] == '\0')
				return cli_usage_error(CMD, "--export: empty file name");
			export_path = optarg;
			break;
		case 'h': cmd_scores_usage(stdout); return CLI_EXIT_OK;
		default: return cli_getopt_error(CMD);
		}
	}
	if (argc - optind != 1)
		return cli_one_operand_error(CMD, argc - optind, "RUN");
	path = argv[optind];

	/* a job of per-rank files: its merged state, from a temporary file */
	char tmpdir[] = "/tmp/ibstore-scores-XXXXXX", merged[64] = "", msg[512];
	job jb = {0, 0};
	if (!mkdtemp(tmpdir)) {
		status = cli_fail(CMD, "mkdtemp: %s", strerror(errno));
		goto done;
	}
	snprintf(merged, sizeof merged, "%s/merged.run", tmpdir);
	rc = ibstore_run_merge(path, merged, &jb.world, &jb.gen, msg, sizeof msg);
	if (rc && rc != IBSTORE_ENOTFOUND) {
		status = cli_fail(CMD, "%s", msg);
		goto done;
	}
	if (rc || (jb.world == 1 && jb.gen == 0)) /* RUN is the file itself */
		jb = (job){0, 0};
	rc = ibstore_run_open(jb.world ? merged : path, NULL, &run);
	if (!rc)
		rc = ibstore_run_config_get(run, &opts);
	if (!rc)
		rc = ibstore_run_info_get(run, &info);
	if (rc) {
		status = cli_fail(CMD, "%s",
				  cli_errmsg(run ? ibstore_run_errmsg(run) : NULL, rc));
		goto done;
	}
	scores = ibstore_run_scores(run, &n);
	h = malloc(sizeof(*h));
	if (!scores || !h) {
		status = cli_fail(CMD, "%s: cannot read the scores", path);
		goto done;
	}
	summarize(scores, n, h);
	if (export_path && export_scores(export_path, scores, n))
		goto done;
	rc = json ? print_json(run, &opts, &info, h, &jb)
		  : print_text(path, run, &opts, &info, h, &jb);
	if (rc) {
		fflush(stdout);
		status = cli_fail(CMD, "%s: epoch statistics: %s", path,
				  cli_errmsg(ibstore_run_errmsg(run), rc));
		goto done;
	}
	status = CLI_EXIT_OK;
done:
	free(h);
	ibstore_run_close(run);
	if (merged[0]) {
		unlink(merged);
		rmdir(tmpdir);
	}
	return status;
}
