/*
 * cmd_get.c — `ibstore get`: extracts one sample, by id or by key, as its
 * decoded bytes (verified against the record checksum) or as JSON metadata.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "get"

void cmd_get_usage(FILE *f)
{
	fputs("Usage: ibstore get [options] DATASET ID\n"
	      "       ibstore get [options] DATASET --key KEY\n"
	      "\n"
	      "Writes sample ID (a decimal number), or the sample with key KEY, decoded\n"
	      "and checked against its record checksum, to standard output or FILE.\n"
	      "\n"
	      "Options:\n"
	      "  -k, --key KEY      select the sample by its key instead of its id\n"
	      "  -o, --output FILE  write to FILE (through FILE.tmp and a rename)\n"
	      "  --json             print the sample's metadata as one JSON object\n"
	      "                     (id, key, label, class, size, stored_size, codec,\n"
	      "                     shard, offset, payload_offset) instead of its bytes;\n"
	      "                     the payload is not read\n"
	      "  --decode           the sample is an image (JPEG, PNG or WebP): write it\n"
	      "                     decoded, as a PNG file (-o required), at full size with\n"
	      "                     no augmentation (a JPEG's pixels are libjpeg-turbo's)\n"
	      "  --images SIZE      with --decode: the sample exactly as the loader's image\n"
	      "                     stage emits it (SIZE or HxW; eval: resize and centre\n"
	      "                     crop), as uint8 pixels\n"
	      "  --train            with --images: the training augmentation\n"
	      "                     (RandomResizedCrop and flip) of epoch E and seed S\n"
	      "  --pad N            with --train: RandomCrop with N pixels of padding\n"
	      "                     instead of RandomResizedCrop (the image resized to\n"
	      "                     SIZE, framed in black, a random SIZE window)\n"
	      "  --epoch E          the epoch whose random draws to show (default 0)\n"
	      "  --seed S           the run's seed (default 0, the run default)\n"
	      "  -h, --help         show this help\n"
	      "\n"
	      "Exit status: 0 success, 1 failure (no such sample, checksum mismatch, ...),\n"
	      "2 wrong arguments.\n", f);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int print_json(ibstore_dataset *ds, const ibstore_location *loc)
{
	const char *key = NULL, *class_name = NULL;
	char shard_name[32];

	int rc = ibstore_dataset_key(ds, loc->id, &key);
	if (rc)
		return rc;
	const char *shard_path = ibstore_dataset_shard_path(ds, loc->shard);
	if (!shard_path) {
		snprintf(shard_name, sizeof(shard_name), "shard-%06" PRIu32 ".ibr", loc->shard);
		shard_path = shard_name;
	}
	printf("{\"id\":%" PRIu64 ",\"key\":", loc->id);
	cli_json_string(stdout, key);
	if (loc->label == IBSTORE_NO_LABEL) {
		fputs(",\"label\":null", stdout);
	} else {
		printf(",\"label\":%" PRId32, loc->label);
		class_name = ibstore_dataset_class_name(ds, loc->label);
	}
	fputs(",\"class\":", stdout);
	cli_json_string(stdout, class_name);
	printf(",\"size\":%" PRIu32 ",\"stored_size\":%" PRIu32 ",\"codec\":", loc->size,
	       loc->stored_size);
	cli_json_string(stdout, ibstore_codec_name((int)loc->codec));
	fputs(",\"shard\":", stdout);
	cli_json_string(stdout, base_name(shard_path));
	printf(",\"offset\":%" PRIu64 ",\"payload_offset\":%" PRIu64 "}\n", loc->offset,
	       loc->payload_offset);
	return 0;
}

/* Writes buf to path via path.tmp and rename(), so path is whole or absent. */
static int write_file(const char *path, const void *buf, size_t len)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof(".tmp"));
	int fd = -1;

	if (!tmp)
		return cli_fail(CMD, "out of memory");
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof(".tmp"));

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		cli_fail(CMD, "%s: %s", tmp, strerror(errno));
		goto fail_free;
	}
	int saved;
	if ((saved = -cli_write_all(fd, buf, len))) {
		cli_fail(CMD, "%s: %s", tmp, strerror(saved));
		goto fail;
	}
	if (close(fd)) {
		fd = -1;
		saved = errno;
		cli_fail(CMD, "%s: %s", tmp, strerror(saved));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path)) {
		saved = errno;
		cli_fail(CMD, "cannot rename %s to %s: %s", tmp, path, strerror(saved));
		goto fail;
	}
	free(tmp);
	return CLI_EXIT_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
fail_free:
	free(tmp);
	return CLI_EXIT_FAIL;
}

/* What --decode writes: the sample decoded (and with --images, processed as
 * the loader would) to a PNG file. */
typedef struct decode_req {
	int on, train;
	uint32_t h, w, pad;
	uint32_t epoch;
	uint64_t seed;
} decode_req;

static int write_decoded(const char *output, const decode_req *d, const void *buf, size_t size,
			 uint64_t id)
{
	ibstore_image_opts o;
	char msg[512];
	void *px = NULL;
	size_t px_size;
	uint32_t w, h;
	if (d->h) {
		ibstore_image_opts_init(&o);
		o.height = d->h;
		o.width = d->w;
		o.mode = d->train ? IBSTORE_IMAGES_TRAIN : IBSTORE_IMAGES_EVAL;
		o.layout = IBSTORE_LAYOUT_HWC;
		o.dtype = IBSTORE_DTYPE_UINT8;
		o.pad = d->pad;
	}
	int rc = ibstore_image_sample(buf, size, d->h ? &o : NULL, d->seed, d->epoch, id, &px,
				      &px_size, &w, &h, msg, sizeof msg);
	if (rc)
		return cli_fail(CMD, "sample %" PRIu64 ": %s", id, msg);
	rc = ibstore_image_write_png(output, px, w, h, msg, sizeof msg);
	free(px);
	if (rc)
		return cli_fail(CMD, "%s", msg);
	return CLI_EXIT_OK;
}

/*
 * Finds an argument that looks like a negative id ("-5"), which getopt
 * would otherwise report as an unknown option "-5".
 */
static const char *negative_id(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "-o") == 0 || strcmp(a, "-k") == 0 || strcmp(a, "--output") == 0 ||
		    strcmp(a, "--key") == 0 || strcmp(a, "--images") == 0 ||
		    strcmp(a, "--epoch") == 0 || strcmp(a, "--seed") == 0 ||
		    strcmp(a, "--pad") == 0) {
			i++; /* its value may begin with '-' */
			continue;
		}
		if (a[0] == '-' && a[1] >= '0' && a[1] <= '9')
			return a;
	}
	return NULL;
}

int cmd_get(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "decode", no_argument, NULL, 'd' },
		{ "images", required_argument, NULL, 'i' },
		{ "train", no_argument, NULL, 't' },
		{ "pad", required_argument, NULL, 'p' },
		{ "epoch", required_argument, NULL, 'e' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char progname[] = "ibstore " CMD;
	const char *key = NULL, *output = NULL, *path, *neg;
	ibstore_dataset *ds = NULL;
	ibstore_location loc;
	unsigned char *buf = NULL;
	int json = 0, opt, rc, npos, status = CLI_EXIT_FAIL;
	uint64_t id = 0, v;
	size_t size = 0;
	decode_req dec = {0};
	int epoch_set = 0, seed_set = 0;

	neg = negative_id(argc, argv);
	if (neg)
		return cli_usage_error(CMD, "bad sample id '%s' (ids are not negative)", neg);
	argv[0] = progname;
	while ((opt = getopt_long(argc, argv, "k:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			key = optarg;
			break;
		case 'o':
			if (optarg[0] == '\0')
				return cli_usage_error(CMD, "empty --output file name");
			output = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'd':
			dec.on = 1;
			break;
		case 'i':
			if (cli_parse_hxw(optarg, &dec.h, &dec.w))
				return cli_usage_error(CMD, "--images: bad size '%s' (SIZE or HxW, "
							    "1..8192)", optarg);
			break;
		case 't':
			dec.train = 1;
			break;
		case 'p':
			if ((rc = cli_parse_pad(CMD, optarg, &dec.pad)))
				return rc;
			break;
		case 'e':
			if (cli_parse_u64(optarg, &v) || v > UINT32_MAX)
				return cli_usage_error(CMD, "--epoch: bad epoch '%s'", optarg);
			dec.epoch = (uint32_t)v;
			epoch_set = 1;
			break;
		case 's':
			if (cli_parse_u64(optarg, &dec.seed))
				return cli_usage_error(CMD, "--seed: bad seed '%s'", optarg);
			seed_set = 1;
			break;
		case 'h':
			cmd_get_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_getopt_error(CMD);
		}
	}
	npos = argc - optind;
	if (npos == 0)
		return cli_usage_error(CMD, "missing DATASET");
	if (key && npos != 1)
		return cli_usage_error(CMD, "give either an ID or --key, not both");
	if (!key && npos != 2)
		return cli_usage_error(CMD, npos == 1 ? "missing ID (or --key KEY)"
						      : "too many arguments");
	if (json && output)
		return cli_usage_error(CMD, "--json and --output do not go together");
	if (dec.on && (json || !output))
		return cli_usage_error(CMD, "--decode writes a PNG file: give -o FILE (and no --json)");
	if (!dec.on && dec.h)
		return cli_usage_error(CMD, "--images needs --decode");
	if ((dec.train || epoch_set || seed_set) && !dec.h)
		return cli_usage_error(CMD, "--train, --epoch and --seed need --images SIZE");
	if (dec.pad && !dec.train)
		return cli_usage_error(CMD, "--pad is a training augmentation: it needs --train");
	if (!key && cli_parse_u64(argv[optind + 1], &id))
		return cli_usage_error(CMD, "bad sample id '%s' (a decimal number)",
				       argv[optind + 1]);
	path = argv[optind];

	if (cli_open_dataset(CMD, path, &ds, NULL))
		goto done;
	if (key) {
		rc = ibstore_dataset_find_key(ds, key, &id);
		if (rc == IBSTORE_ENOTFOUND) {
			status = cli_fail(CMD, "%s: no sample has key '%s'", path, key);
			goto done;
		}
		if (rc)
			goto fail_lib;
	}
	rc = ibstore_dataset_locate(ds, id, &loc);
	if (rc == IBSTORE_ENOTFOUND) {
		ibstore_info info;

		if (ibstore_dataset_info_get(ds, &info) == 0)
			status = cli_fail(CMD, "%s: no sample %" PRIu64 " (the dataset has %" PRIu64
					       " samples)", path, id, info.samples);
		else
			status = cli_fail(CMD, "%s: no sample %" PRIu64, path, id);
		goto done;
	}
	if (rc)
		goto fail_lib;

	if (json) {
		rc = print_json(ds, &loc);
		if (rc)
			goto fail_lib;
		status = CLI_EXIT_OK;
		goto done;
	}

	buf = malloc(loc.size > 0 ? loc.size : 1);
	if (!buf) {
		status = cli_fail(CMD, "out of memory for a sample of %" PRIu32 " bytes", loc.size);
		goto done;
	}
	rc = ibstore_dataset_read(ds, id, buf, loc.size, &size, NULL);
	if (rc)
		goto fail_lib;

	if (dec.on) {
		status = write_decoded(output, &dec, buf, size, id);
		goto done;
	}
	if (output) {
		status = write_file(output, buf, size);
		goto done;
	}
	if (fwrite(buf, 1, size, stdout) != size || fflush(stdout)) {
		status = cli_fail(CMD, "error writing to standard output: %s", strerror(errno));
		goto done;
	}
	status = CLI_EXIT_OK;
	goto done;

fail_lib:
	status = cli_fail(CMD, "%s", cli_errmsg(ibstore_dataset_errmsg(ds), rc));
done:
	free(buf);
	ibstore_dataset_close(ds);
	return status;
}
