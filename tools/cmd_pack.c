/*
 * cmd_pack.c — `ibstore pack`: converts IDX, image-folder, CIFAR, WebDataset
 * tar or JSONL input into a published ibstore dataset through an importer
 * and a writer.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "ibstore.h"
#include "import.h"

#define CMD "pack"

enum source { SRC_NONE, SRC_IDX, SRC_FOLDER, SRC_CIFAR, SRC_TAR, SRC_JSONL };

enum {
	OPT_FROM = 256,
	OPT_CIFAR,
	OPT_SHARD_SIZE,
	OPT_COMPRESS,
	OPT_LEVEL,
	OPT_ALIGN,
	OPT_NO_FSYNC,
	OPT_JOBS,
	OPT_PAYLOAD,
	OPT_LABEL_EXT,
	OPT_FIELD,
	OPT_LABEL_FIELD,
	OPT_SKIP_BAD,
	OPT_LINE_KEYS,
};

/* Bad JSON lines printed before the rest are only counted. */
#define MAX_WARNINGS 10

typedef struct pack_progress {
	cli_progress prog;
	unsigned long long warnings;
	int quiet;
} pack_progress;

void cmd_pack_usage(FILE *f)
{
	fputs("Usage: ibstore pack --from idx IMAGES LABELS OUT [options]\n"
	      "       ibstore pack --from folder DIR OUT [options]\n"
	      "       ibstore pack --from cifar FILE... OUT [options]\n"
	      "       ibstore pack --from tar SHARD.tar... OUT [options]\n"
	      "       ibstore pack --from jsonl FILE... OUT [options]\n"
	      "\n"
	      "Packs a dataset into OUT, which must not exist.  OUT appears only\n"
	      "when packing succeeded; on failure nothing is left there.\n"
	      "\n"
	      "Sources:\n"
	      "  idx      IDX images and labels (MNIST, Fashion-MNIST), raw or .gz\n"
	      "  folder   DIR/<class>/<file>: one sample per file, labels from the\n"
	      "           sorted class directory names, keys \"class/file\"\n"
	      "  cifar    CIFAR-10 or CIFAR-100 binary batches\n"
	      "  tar      WebDataset shards: members sharing a stem (the path up to\n"
	      "           the first '.' of the file name) form one sample; the\n"
	      "           payload is the member with the first --payload extension\n"
	      "           present, the label the decimal text of the --label-ext\n"
	      "           member; keys are the stems.  The first payload extension\n"
	      "           is recorded as attribute \"ext\"; a sample with another one\n"
	      "           is keyed \"stem.ext\"\n"
	      "  jsonl    JSON Lines: one sample per non-blank line, the line's\n"
	      "           bytes or one field's value (--field)\n"
	      "\n"
	      "Options:\n"
	      "  --from SOURCE        idx, folder, cifar, tar or jsonl (required)\n"
	      "  --cifar 10|100|auto  CIFAR variant (default auto: from file sizes)\n"
	      "  --payload EXT,...    tar: payload extensions, best first (default\n"
	      "                       " IMPORT_TAR_PAYLOAD_DEFAULT ")\n"
	      "  --label-ext EXT      tar: extension of the label member (default cls)\n"
	      "  --field NAME         jsonl: the sample is this top-level field: a string\n"
	      "                       as its UTF-8 bytes, other values as JSON text\n"
	      "  --label-field NAME   jsonl: integer (or null) label field\n"
	      "  --skip-bad           jsonl: skip malformed lines, count and report them\n"
	      "  --line-keys          jsonl: key each sample \"FILE:LINE\"\n"
	      "  --jobs N             threads compressing, checksumming and writing\n"
	      "                       records, 1..256 (default 1); the output is the\n"
	      "                       same for every N\n"
	      "  --shard-size SIZE    start a new shard past SIZE bytes; suffixes K, M,\n"
	      "                       G, T are powers of 1024 (default 256M)\n"
	      "  --compress CODEC     none, lz4, lz4hc or auto (default none); auto\n"
	      "                       stores a sample raw when lz4 does not shrink it\n"
	      "  --level N            lz4hc level 1..12 (default 9)\n"
	      "  --align N            record alignment, a power of two 1..4096 (default 8)\n"
	      "  -q, --quiet          no progress and no summary\n"
	      "  -h, --help           show this help\n"
	      "\n"
	      "Progress (records, MB/s, and an ETA when the input size is known up\n"
	      "front) and a final summary go to standard error.\n"
	      "Exit status: 0 packed, 1 failed, 2 wrong arguments.\n", f);
}

static int parse_source(const char *s, enum source *out)
{
	if (strcmp(s, "idx") == 0)
		*out = SRC_IDX;
	else if (strcmp(s, "folder") == 0)
		*out = SRC_FOLDER;
	else if (strcmp(s, "cifar") == 0)
		*out = SRC_CIFAR;
	else if (strcmp(s, "tar") == 0)
		*out = SRC_TAR;
	else if (strcmp(s, "jsonl") == 0)
		*out = SRC_JSONL;
	else
		return -1;
	return 0;
}

static void on_progress(void *ctx, unsigned long long samples, unsigned long long bytes_in)
{
	pack_progress *pp = ctx;

	cli_progress_update(&pp->prog, samples, bytes_in);
}

static void on_total(void *ctx, unsigned long long total)
{
	pack_progress *pp = ctx;

	cli_progress_set_total(&pp->prog, total);
}

/* A skipped bad line: the first few are printed even with -q (data is lost). */
static void on_warn(void *ctx, const char *msg)
{
	pack_progress *pp = ctx;

	if (++pp->warnings > MAX_WARNINGS)
		return;
	cli_progress_finish(&pp->prog);
	fprintf(stderr, "ibstore " CMD ": warning: %s\n", msg);
}

/* Sum of the input files' sizes, for a summary when the importer gave none. */
static unsigned long long input_bytes(char **paths, int n)
{
	unsigned long long sum = 0;
	struct stat st;

	for (int i = 0; i < n; i++)
		if (stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
			sum += (unsigned long long)st.st_size;
	return sum;
}

/* Opens the published dataset to report its shard count; -1 when it fails. */
static long count_shards(const char *path, char *err, size_t errlen)
{
	ibstore_dataset *ds = NULL;
	ibstore_info info;
	long shards = -1;

	int rc = ibstore_dataset_open(path, &ds);
	if (!rc)
		rc = ibstore_dataset_info_get(ds, &info);
	if (rc) {
		snprintf(err, errlen, "%s",
			 cli_errmsg(ds ? ibstore_dataset_errmsg(ds) : NULL, rc));
		goto out;
	}
	shards = (long)info.shards;
out:
	ibstore_dataset_close(ds);
	return shards;
}

static void print_summary(const cli_progress *p, unsigned long long samples, long shards,
			  double secs)
{
	double mb = (double)p->bytes / 1e6;

	fprintf(stderr, "packed %llu samples into %ld shard%s: %.1f MB in, %.1f MB/s, %.2f s\n",
		samples, shards, shards == 1 ? "" : "s", mb, secs > 0 ? mb / secs : 0.0,
		secs);
}

int cmd_pack(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ "cifar", required_argument, NULL, OPT_CIFAR },
		{ "shard-size", required_argument, NULL, OPT_SHARD_SIZE },
		{ "compress", required_argument, NULL, OPT_COMPRESS },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "align", required_argument, NULL, OPT_ALIGN },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-fsync", no_argument, NULL, OPT_NO_FSYNC },
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "payload", required_argument, NULL, OPT_PAYLOAD },
		{ "label-ext", required_argument, NULL, OPT_LABEL_EXT },
		{ "field", required_argument, NULL, OPT_FIELD },
		{ "label-field", required_argument, NULL, OPT_LABEL_FIELD },
		{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
		{ "line-keys", no_argument, NULL, OPT_LINE_KEYS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char progname[] = "ibstore " CMD;
	ibstore_writer_opts opts;
	ibstore_writer *w = NULL;
	enum source src = SRC_NONE;
	int cifar_variant = 0, cifar_given = 0, quiet = 0;
	char err[1024] = "";
	char shard_err[512] = "";
	pack_progress pp;
	cli_progress *prog = &pp.prog;
	import_tar_opts tar_opts = { 0 };
	import_jsonl_opts jsonl_opts = { 0 };
	int tar_given = 0, jsonl_given = 0;
	import_ctx ic;
	const char *out;
	char **inputs;
	int ninputs, npos, rc, opt, status = CLI_EXIT_FAIL;
	unsigned long long samples;
	uint64_t v;
	long shards;
	double secs;

	ibstore_writer_opts_init(&opts);
	argv[0] = progname; /* getopt's own messages then name the command */
	while ((opt = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_FROM:
			if (parse_source(optarg, &src))
				return cli_usage_error(CMD, "unknown source '%s' (idx, folder, cifar, tar or jsonl)",
						       optarg);
			break;
		case OPT_CIFAR:
			cifar_given = 1;
			if (strcmp(optarg, "10") == 0)
				cifar_variant = 10;
			else if (strcmp(optarg, "100") == 0)
				cifar_variant = 100;
			else if (strcmp(optarg, "auto") == 0)
				cifar_variant = 0;
			else
				return cli_usage_error(CMD, "--cifar must be 10, 100 or auto, not '%s'",
						       optarg);
			break;
		case OPT_SHARD_SIZE:
			if (cli_parse_size(optarg, &v) || v == 0)
				return cli_usage_error(CMD, "bad --shard-size '%s' (e.g. 256M, 1G, 65536)",
						       optarg);
			opts.shard_size = v;
			break;
		case OPT_COMPRESS:
			if (ibstore_compress_parse(optarg, &opts.compress))
				return cli_usage_error(CMD,
						       "bad --compress '%s' (none, lz4, lz4hc or auto)",
						       optarg);
			break;
		case OPT_LEVEL:
			if (cli_parse_u64(optarg, &v) || v < 1 || v > 12)
				return cli_usage_error(CMD, "bad --level '%s' (1..12)", optarg);
			opts.lz4hc_level = (int)v;
			break;
		case OPT_ALIGN:
			if (cli_parse_u64(optarg, &v) || v < 1 || v > 4096 || (v & (v - 1)))
				return cli_usage_error(CMD,
						       "bad --align '%s' (a power of two 1..4096)",
						       optarg);
			opts.alignment = (uint32_t)v;
			break;
		case OPT_PAYLOAD:
			tar_given = 1;
			tar_opts.payload = optarg;
			break;
		case OPT_LABEL_EXT:
			tar_given = 1;
			if (optarg[0] == '\0' || strchr(optarg, '/'))
				return cli_usage_error(CMD, "bad --label-ext '%s'", optarg);
			tar_opts.label_ext = optarg;
			break;
		case OPT_FIELD:
			jsonl_given = 1;
			if (optarg[0] == '\0')
				return cli_usage_error(CMD, "--field needs a field name");
			jsonl_opts.field = optarg;
			break;
		case OPT_LABEL_FIELD:
			jsonl_given = 1;
			if (optarg[0] == '\0')
				return cli_usage_error(CMD, "--label-field needs a field name");
			jsonl_opts.label_field = optarg;
			break;
		case OPT_SKIP_BAD:
			jsonl_given = 1;
			jsonl_opts.skip_bad = 1;
			break;
		case OPT_LINE_KEYS:
			jsonl_given = 1;
			jsonl_opts.line_keys = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case OPT_NO_FSYNC:
			opts.fsync = 0;
			break;
		case OPT_JOBS:
			if (cli_parse_u64(optarg, &v) || v < 1 || v > 256)
				return cli_usage_error(CMD, "bad --jobs '%s' (1..256)", optarg);
			opts.jobs = (int)v;
			break;
		case 'h':
			cmd_pack_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_getopt_error(CMD);
		}
	}

	npos = argc - optind;
	switch (src) {
	case SRC_NONE:
		return cli_usage_error(CMD, "missing --from idx|folder|cifar|tar|jsonl");
	case SRC_IDX:
		if (npos != 3)
			return cli_usage_error(CMD, "--from idx needs IMAGES LABELS OUT");
		break;
	case SRC_FOLDER:
		if (npos != 2)
			return cli_usage_error(CMD, "--from folder needs DIR OUT");
		break;
	case SRC_CIFAR:
		if (npos < 2)
			return cli_usage_error(CMD, "--from cifar needs FILE... OUT");
		break;
	case SRC_TAR:
		if (npos < 2)
			return cli_usage_error(CMD, "--from tar needs SHARD.tar... OUT");
		break;
	case SRC_JSONL:
		if (npos < 2)
			return cli_usage_error(CMD, "--from jsonl needs FILE... OUT");
		break;
	}
	if (tar_given && src != SRC_TAR)
		return cli_usage_error(CMD, "--payload and --label-ext apply only to --from tar");
	if (jsonl_given && src != SRC_JSONL)
		return cli_usage_error(CMD, "--field, --label-field, --skip-bad and --line-keys "
				       "apply only to --from jsonl");
	if (cifar_given && src != SRC_CIFAR)
		return cli_usage_error(CMD, "--cifar applies only to --from cifar");
	inputs = argv + optind;
	ninputs = npos - 1;
	out = argv[argc - 1];

	rc = ibstore_writer_create(out, &opts, &w);
	if (rc) {
		status = cli_fail(CMD, "%s",
				  cli_errmsg(w ? ibstore_writer_errmsg(w) : NULL, rc));
		goto done;
	}

	memset(&pp, 0, sizeof(pp));
	cli_progress_init(prog, stderr, !quiet);
	pp.quiet = quiet;
	memset(&ic, 0, sizeof(ic));
	ic.w = w;
	ic.err = err;
	ic.errlen = sizeof(err);
	ic.progress = on_progress;
	ic.progress_ctx = &pp;
	ic.total = on_total;
	ic.warn = on_warn;

	switch (src) {
	case SRC_IDX:
		rc = import_idx(&ic, inputs[0], inputs[1]);
		break;
	case SRC_FOLDER:
		rc = import_folder(&ic, inputs[0]);
		break;
	case SRC_TAR:
		rc = import_tar(&ic, (const char *const *)inputs, ninputs, &tar_opts);
		break;
	case SRC_JSONL:
		rc = import_jsonl(&ic, (const char *const *)inputs, ninputs, &jsonl_opts);
		break;
	default:
		rc = import_cifar(&ic, (const char *const *)inputs, ninputs, cifar_variant);
		break;
	}
	cli_progress_finish(prog);
	if (pp.warnings > MAX_WARNINGS)
		fprintf(stderr, "ibstore " CMD ": warning: %llu more bad lines skipped\n",
			pp.warnings - MAX_WARNINGS);
	if (jsonl_opts.skipped > 0)
		fprintf(stderr, "ibstore " CMD ": skipped %llu bad line%s\n", jsonl_opts.skipped,
			jsonl_opts.skipped == 1 ? "" : "s");
	if (rc) {
		/* The importer's message names the input; fall back to the writer's. */
		const char *msg = err[0] != '\0' ? err : ibstore_writer_errmsg(w);

		status = cli_fail(CMD, "%s", cli_errmsg(msg, rc));
		goto done;
	}

	rc = ibstore_writer_publish(w);
	if (rc) {
		status = cli_fail(CMD, "%s", cli_errmsg(ibstore_writer_errmsg(w), rc));
		goto done;
	}
	secs = cli_progress_elapsed(prog);
	samples = (unsigned long long)ibstore_writer_count(w);
	status = CLI_EXIT_OK;
	if (quiet)
		goto done;

	if (prog->bytes == 0 && src != SRC_FOLDER)
		prog->bytes = input_bytes(inputs, ninputs);
	/* Reopening checks that what was published reads back. */
	shards = count_shards(out, shard_err, sizeof(shard_err));
	if (shards < 0) {
		status = cli_fail(CMD, "published %s but it does not open: %s", out, shard_err);
		goto done;
	}
	print_summary(prog, samples, shards, secs);
done:
	ibstore_writer_free(w);
	return status;
}
