/*
 * cmd_info.c — `ibstore info`: describes a dataset from its catalog, as
 * aligned text for people or as one JSON object for scripts.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "info"

/* Class names printed in text mode; --json lists them all. */
#define TEXT_CLASSES 10

void cmd_info_usage(FILE *f)
{
	fputs("Usage: ibstore info [--json] DATASET\n"
	      "\n"
	      "Describes a dataset: samples, shards, sizes, codecs, labels, format\n"
	      "version, alignment, UUID, creation time, keys, attributes and class names.\n"
	      "\n"
	      "Options:\n"
	      "  --json      print one JSON object instead of text\n"
	      "  -h, --help  show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 the dataset cannot be opened, 2 wrong arguments.\n",
	      f);
}

static void format_uuid(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
}

static void format_time(uint64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((uint64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "@%" PRIu64, t);
}

/* Number of labels 0..labels-1 that have a recorded name. */
static uint32_t named_classes(ibstore_dataset *ds, uint32_t labels)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < labels && i <= INT32_MAX; i++)
		if (ibstore_dataset_class_name(ds, (int32_t)i))
			n++;
	return n;
}

static void print_json(ibstore_dataset *ds, const ibstore_info *in, const char *uuid,
		       const char *created)
{
	static const char *const attrs[] = { "source", "shape", "ext" };
	uint32_t i;

	printf("{\"samples\":%" PRIu64 ",\"shards\":%" PRIu32, in->samples, in->shards);
	printf(",\"bytes_stored\":%" PRIu64 ",\"bytes_raw\":%" PRIu64
	       ",\"bytes_files\":%" PRIu64,
	       in->bytes_stored, in->bytes_raw, in->bytes_files);
	printf(",\"labels\":%" PRIu32 ",\"format_version\":%" PRIu32, in->labels,
	       in->format_version);
	printf(",\"uuid\":\"%s\",\"alignment\":%" PRIu32, uuid, in->alignment);
	printf(",\"codecs\":{\"%s\":%" PRIu64 ",\"%s\":%" PRIu64 "}",
	       ibstore_codec_name(IBSTORE_CODEC_NONE), in->codec_count[0],
	       ibstore_codec_name(IBSTORE_CODEC_LZ4), in->codec_count[1]);
	if (in->fixed_size)
		printf(",\"fixed_size\":%" PRIu64, in->fixed_size);
	else
		fputs(",\"fixed_size\":null", stdout);
	printf(",\"max_size\":%" PRIu64 ",\"keys\":%" PRIu64, in->max_size, in->keys);
	printf(",\"created\":\"%s\",\"created_unix\":%" PRIu64, created, in->created);
	for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
		printf(",\"%s\":", attrs[a]);
		cli_json_string(stdout, ibstore_dataset_attr(ds, attrs[a]));
	}
	/* classes[i] is label i's name (null when unnamed); [] when none has one. */
	fputs(",\"classes\":[", stdout);
	if (named_classes(ds, in->labels) > 0) {
		for (i = 0; i < in->labels && i <= INT32_MAX; i++) {
			if (i > 0)
				fputc(',', stdout);
			cli_json_string(stdout, ibstore_dataset_class_name(ds, (int32_t)i));
		}
	}
	fputs("]}\n", stdout);
}

static void print_text(const char *path, ibstore_dataset *ds, const ibstore_info *in,
		       const char *uuid, const char *created)
{
	static const char *const attrs[] = { "source", "shape", "ext" };
	char h1[32];
	uint32_t shown = 0;

	printf("dataset         %s\n", path);
	printf("format version  %" PRIu32 "\n", in->format_version);
	printf("uuid            %s\n", uuid);
	printf("created         %s\n", created);
	printf("samples         %" PRIu64 "\n", in->samples);
	printf("shards          %" PRIu32 "\n", in->shards);
	printf("alignment       %" PRIu32 "\n", in->alignment);
	printf("bytes stored    %" PRIu64 " (%s)\n", in->bytes_stored,
	       cli_human_bytes(in->bytes_stored, h1, sizeof(h1)));
	printf("bytes raw       %" PRIu64 " (%s)\n", in->bytes_raw,
	       cli_human_bytes(in->bytes_raw, h1, sizeof(h1)));
	printf("bytes on disk   %" PRIu64 " (%s)\n", in->bytes_files,
	       cli_human_bytes(in->bytes_files, h1, sizeof(h1)));
	printf("codecs          %s %" PRIu64 ", %s %" PRIu64 "\n",
	       ibstore_codec_name(IBSTORE_CODEC_NONE), in->codec_count[0],
	       ibstore_codec_name(IBSTORE_CODEC_LZ4), in->codec_count[1]);
	if (in->fixed_size)
		printf("sample size     %" PRIu64 " (fixed)\n", in->fixed_size);
	else
		printf("sample size     varies, max %" PRIu64 "\n", in->max_size);
	printf("labels          %" PRIu32 "\n", in->labels);
	printf("keys            %" PRIu64 "\n", in->keys);
	for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
		const char *v = ibstore_dataset_attr(ds, attrs[a]);

		if (v)
			printf("%-15s %s\n", attrs[a], v);
	}
	uint32_t named = named_classes(ds, in->labels);
	if (named == 0)
		return;
	printf("classes        ");
	for (uint32_t i = 0; i < in->labels && i <= INT32_MAX && shown < TEXT_CLASSES; i++) {
		const char *name = ibstore_dataset_class_name(ds, (int32_t)i);

		if (!name)
			continue;
		printf("%s %" PRIu32 "=%s", shown == 0 ? "" : ",", i, name);
		shown++;
	}
	if (named > shown)
		printf(", ... (%" PRIu32 " more)", named - shown);
	putchar('\n');
}

int cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char progname[] = "ibstore " CMD;
	ibstore_dataset *ds = NULL;
	ibstore_info info;
	char uuid[37], created[64];
	int json = 0, opt, status = CLI_EXIT_FAIL;
	const char *path;

	argv[0] = progname;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'h':
			cmd_info_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_getopt_error(CMD);
		}
	}
	if (argc - optind != 1)
		return cli_one_operand_error(CMD, argc - optind, "DATASET");
	path = argv[optind];

	if (cli_open_dataset(CMD, path, &ds, &info))
		goto done;
	format_uuid(info.uuid, uuid);
	format_time(info.created, created, sizeof(created));
	if (json)
		print_json(ds, &info, uuid, created);
	else
		print_text(path, ds, &info, uuid, created);
	status = CLI_EXIT_OK;
done:
	ibstore_dataset_close(ds);
	return status;
}
