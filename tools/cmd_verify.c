/*
 * cmd_verify.c — `ibstore verify`: reads every record of a dataset and
 * reports each problem on one line, for people and for grep.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "verify"

void cmd_verify_usage(FILE *f)
{
	fputs("Usage: ibstore verify [--quiet] DATASET\n"
	      "\n"
	      "Reads every record of every shard and checks its header, checksum and\n"
	      "decoding, and each shard file's digest.  Each problem is printed on\n"
	      "standard output as one line:\n"
	      "  BAD shard-000003.ibr offset 81920 sample 4711: <what is wrong>\n"
	      "and a summary (\"N records checked, M bad\") goes to standard error.\n"
	      "\n"
	      "Options:\n"
	      "  -q, --quiet  print nothing; only the exit status tells\n"
	      "  -h, --help   show this help\n"
	      "\n"
	      "Exit status: 0 everything sound, 1 problems found or the dataset cannot\n"
	      "be read, 2 wrong arguments.\n", f);
}

typedef struct verify_ctx {
	ibstore_dataset *ds;
	int quiet;
	uint64_t problems;
} verify_ctx;

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * The library's messages start with the location ("shard-000003.ibr offset
 * 81920: ...") that the BAD line already names; skip it to avoid saying it
 * twice.
 */
static const char *skip_location(const char *msg, const char *shard, uint64_t offset)
{
	size_t n = strlen(shard);
	char off[40];

	if (shard[0] == '\0' || strncmp(msg, shard, n) != 0)
		return msg;
	if (strncmp(msg + n, ": ", 2) == 0)
		return msg + n + 2;
	if (offset == UINT64_MAX)
		return msg;
	snprintf(off, sizeof(off), " offset %" PRIu64 ": ", offset);
	size_t m = strlen(off);
	if (strncmp(msg + n, off, m) == 0)
		return msg + n + m;
	return msg;
}

static int on_problem(const ibstore_problem *p, void *arg)
{
	verify_ctx *v = arg;
	char shard[32] = "";

	v->problems++;
	if (v->quiet)
		return 0;
	fputs("BAD", stdout);
	if (p->shard != UINT32_MAX) {
		const char *path = ibstore_dataset_shard_path(v->ds, p->shard);

		if (path)
			snprintf(shard, sizeof(shard), "%s", base_name(path));
		else
			snprintf(shard, sizeof(shard), "shard-%06" PRIu32 ".ibr", p->shard);
		printf(" %s", shard);
	}
	if (p->offset != UINT64_MAX)
		printf(" offset %" PRIu64, p->offset);
	if (p->id != UINT64_MAX)
		printf(" sample %" PRIu64, p->id);
	const char *msg = skip_location(cli_errmsg(p->message, p->code), shard, p->offset);
	printf(": %s\n", msg);
	/* One line at a time, so a watcher (or a pipe to head) sees it now. */
	fflush(stdout);
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char progname[] = "ibstore " CMD;
	ibstore_verify_stats stats;
	verify_ctx v;
	int opt, rc, status = CLI_EXIT_FAIL;

	memset(&v, 0, sizeof(v));
	memset(&stats, 0, sizeof(stats));
	argv[0] = progname;
	while ((opt = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			v.quiet = 1;
			break;
		case 'h':
			cmd_verify_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_getopt_error(CMD);
		}
	}
	if (argc - optind != 1)
		return cli_one_operand_error(CMD, argc - optind, "DATASET");

	if (cli_open_dataset(CMD, argv[optind], &v.ds, NULL))
		goto done;

	rc = ibstore_dataset_verify(v.ds, on_problem, &v, &stats);
	if (rc && rc != IBSTORE_ECORRUPT) {
		/* Verification itself failed (I/O error, ...): not a verdict. */
		status = cli_fail(CMD, "%s", cli_errmsg(ibstore_dataset_errmsg(v.ds), rc));
		goto done;
	}
	if (!v.quiet) {
		fprintf(stderr, "%" PRIu64 " records checked, %" PRIu64 " bad", stats.records_checked,
			stats.records_bad);
		if (stats.shards_bad)
			fprintf(stderr, ", %" PRIu64 " shard%s with a bad digest", stats.shards_bad,
				stats.shards_bad == 1 ? "" : "s");
		fputc('\n', stderr);
	}
	/* Sound only when the library says so and no problem was reported. */
	status = rc == 0 && v.problems == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
done:
	ibstore_dataset_close(v.ds);
	return status;
}
