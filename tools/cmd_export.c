/*
 * cmd_export.c — `ibstore export`: writes every sample of a dataset as a
 * file DIR/<class>/<name>, the layout `ibstore pack --from folder` reads,
 * so that pack → export → pack --from folder → export reproduces the first
 * export byte for byte.
 *
 * <class> is the label's recorded class name, else the decimal label
 * ("unlabeled" for samples without one); <name> is the last path component
 * of the sample's key, else its decimal id, with "." and the dataset's
 * attribute "ext" appended when that component has no '.'.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "cli_util.h"
#include "ibstore.h"

#define CMD "export"
#define NO_LABEL_DIR "unlabeled"

void cmd_export_usage(FILE *f)
{
	fputs("Usage: ibstore export [options] DATASET DIR\n"
	      "\n"
	      "Writes each sample, decoded and checked against its checksum, to\n"
	      "DIR/<class>/<name>: <class> is the label's recorded class name, else\n"
	      "the decimal label (\"" NO_LABEL_DIR "\" without a label); <name> is the\n"
	      "last path component of the sample's key, else its decimal id, with\n"
	      "\".EXT\" appended when it has no '.' and the dataset records an\n"
	      "extension (attribute \"ext\", as pack --from tar does).  The result can\n"
	      "be packed again with `ibstore pack --from folder DIR OUT`.\n"
	      "\n"
	      "DIR must not exist or be empty.  Two samples that map to the same\n"
	      "file are an error (nothing is overwritten).\n"
	      "\n"
	      "Options:\n"
	      "  -q, --quiet   no progress and no summary\n"
	      "  -h, --help    show this help\n"
	      "\n"
	      "Exit status: 0 exported, 1 failed, 2 wrong arguments.\n", f);
}

/* A name usable as one path component: not empty, ".", "..", no '/'. */
static int safe_component(const char *s)
{
	return s[0] != '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	       strchr(s, '/') == NULL;
}

/* Creates DIR, or accepts it when it is an empty directory; returns its fd. */
static int open_output(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755)) {
		if (errno != EEXIST) {
			cli_fail(CMD, "cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
		if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
			cli_fail(CMD, "%s exists and is not a directory", dir);
			return -1;
		}
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cli_fail(CMD, "cannot open %s: %s", dir, strerror(errno));
		return -1;
	}
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;

	if (!d) {
		cli_fail(CMD, "cannot read %s: %s", dir, strerror(errno));
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			cli_fail(CMD, "%s is not empty; refusing to export into it", dir);
			closedir(d);
			close(fd);
			return -1;
		}
	}
	closedir(d);
	return fd;
}

int cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char progname[] = "ibstore " CMD;
	ibstore_dataset *ds = NULL;
	ibstore_info info;
	cli_progress prog;
	uint8_t *buf = NULL;
	char *path = NULL;
	size_t path_cap = 0;
	int quiet = 0, opt, rc, dirfd = -1, status = CLI_EXIT_FAIL;
	unsigned long long bytes = 0;
	const char *ext, *dir;

	argv[0] = progname;
	while ((opt = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			quiet = 1;
			break;
		case 'h':
			cmd_export_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_getopt_error(CMD);
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(CMD, "needs DATASET DIR");
	dir = argv[optind + 1];

	if (cli_open_dataset(CMD, argv[optind], &ds, &info))
		goto done;
	ext = ibstore_dataset_attr(ds, "ext");
	if (ext && (ext[0] == '\0' || strchr(ext, '/'))) {
		cli_fail(CMD, "%s: recorded extension '%s' is not usable in a file name",
			 argv[optind], ext);
		goto done;
	}
	buf = malloc(info.max_size > 0 ? info.max_size : 1);
	if (!buf) {
		cli_fail(CMD, "out of memory for a %" PRIu64 "-byte sample", info.max_size);
		goto done;
	}
	dirfd = open_output(dir);
	if (dirfd < 0)
		goto done;

	cli_progress_init(&prog, stderr, !quiet);
	cli_progress_set_total(&prog, info.bytes_raw);
	for (uint64_t id = 0; id < info.samples; id++) {
		ibstore_location loc;
		const char *key = NULL, *cls, *name;
		char label_name[16], id_name[24];
		size_t size;

		rc = ibstore_dataset_locate(ds, id, &loc);
		if (!rc)
			rc = ibstore_dataset_key(ds, id, &key);
		if (!rc)
			rc = ibstore_dataset_read(ds, id, buf, info.max_size, &size, NULL);
		if (rc) {
			cli_fail(CMD, "%s", cli_errmsg(ibstore_dataset_errmsg(ds), rc));
			goto done;
		}
		cls = loc.label == IBSTORE_NO_LABEL ? NULL : ibstore_dataset_class_name(ds, loc.label);
		if (!cls) {
			if (loc.label == IBSTORE_NO_LABEL)
				snprintf(label_name, sizeof label_name, NO_LABEL_DIR);
			else
				snprintf(label_name, sizeof label_name, "%" PRId32, loc.label);
			cls = label_name;
		}
		if (!safe_component(cls)) {
			cli_fail(CMD, "sample %" PRIu64 ": class name '%s' cannot be a directory name",
				 id, cls);
			goto done;
		}
		if (key) {
			const char *slash = strrchr(key, '/');

			name = slash ? slash + 1 : key;
		} else {
			snprintf(id_name, sizeof id_name, "%" PRIu64, id);
			name = id_name;
		}
		if (!safe_component(name)) {
			cli_fail(CMD, "sample %" PRIu64 ": key '%s' does not end in a file name", id,
				 key ? key : "");
			goto done;
		}
		size_t need = strlen(cls) + strlen(name) + (ext ? strlen(ext) : 0) + 3;

		if (need > path_cap) {
			char *p = realloc(path, need);

			if (!p) {
				cli_fail(CMD, "out of memory");
				goto done;
			}
			path = p;
			path_cap = need;
		}
		int add_ext = ext != NULL && strchr(name, '.') == NULL;

		snprintf(path, need, "%s/%s%s%s", cls, name, add_ext ? "." : "", add_ext ? ext : "");
		if (mkdirat(dirfd, cls, 0755) && errno != EEXIST) {
			cli_fail(CMD, "cannot create %s/%s: %s", dir, cls, strerror(errno));
			goto done;
		}
		int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0644);

		if (fd < 0) {
			if (errno == EEXIST)
				cli_fail(CMD, "sample %" PRIu64 " maps to %s/%s, which an earlier "
					 "sample already wrote (keys with the same last component "
					 "in one class)", id, dir, path);
			else
				cli_fail(CMD, "cannot create %s/%s: %s", dir, path, strerror(errno));
			goto done;
		}
		int wrc = cli_write_all(fd, buf, size);

		if (close(fd) && wrc == 0)
			wrc = -errno;
		if (wrc) {
			cli_fail(CMD, "cannot write %s/%s: %s", dir, path, strerror(-wrc));
			goto done;
		}
		bytes += size;
		cli_progress_update(&prog, id + 1, bytes);
	}
	cli_progress_finish(&prog);
	if (!quiet) {
		double secs = cli_progress_elapsed(&prog);

		fprintf(stderr, "exported %" PRIu64 " samples to %s: %.1f MB, %.2f s\n",
			info.samples, dir, (double)bytes / 1e6, secs);
	}
	status = CLI_EXIT_OK;
done:
	if (dirfd >= 0)
		close(dirfd);
	free(path);
	free(buf);
	ibstore_dataset_close(ds);
	return status;
}
