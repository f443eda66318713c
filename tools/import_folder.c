/*
 * import_folder.c — image-folder importer, as torchvision's ImageFolder:
 * DIR/<class>/<any depth>/<file>.
 *
 * Choices a user may need to know:
 *  - Names starting with '.' (files and directories) are skipped at every
 *    level, so editor droppings and .DS_Store never become samples.
 *  - Class directories are the non-hidden sub-directories of DIR (not
 *    symlinks to directories); regular files directly in DIR are ignored.
 *    A class directory without files still takes its label, so labels match
 *    ImageFolder's class_to_idx for the same tree.
 *  - Below a class directory, symbolic links to regular files are followed
 *    (a dataset assembled from links works); symbolic links to directories
 *    are not, which rules out loops.  A dangling link is an error, not a
 *    silently missing sample.  FIFOs, sockets and devices are skipped.
 *  - Samples are added class by class in label order and, within a class,
 *    in strcmp order of their path relative to DIR, which is also their key.
 *  - Only one directory is open at a time, so deep trees cannot exhaust
 *    file descriptors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"

#define FOLDER_PROGRESS_EVERY 1024u
#define FOLDER_MAX_SAMPLE 0xffffffffull /* 4 GiB - 1, the format's limit */

typedef struct strvec {
	char **v;
	size_t n, cap;
} strvec;

typedef struct folder_run {
	import_ctx *c;
	const char *dir;   /* as given, for messages */
	int rootfd;
	unsigned char *buf; /* reused for every file */
	size_t bufcap;
	unsigned long long samples, bytes_in;
	unsigned long long total; /* sizes of the files listed */
} folder_run;

static int errno_code(int e)
{
	return e == ENOENT ? IBSTORE_ENOTFOUND : IBSTORE_EIO;
}

static void strvec_free(strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

/* Takes ownership of `s` (even on failure). */
static int strvec_push(strvec *sv, char *s)
{
	if (!s)
		return IBSTORE_ENOMEM;
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 64;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (!v) {
			free(s);
			return IBSTORE_ENOMEM;
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strvec_sort(strvec *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/*
 * Lists directory `rel` (relative to the root): regular files (and links to
 * them) go to `files` as paths relative to the root, sub-directories to
 * `subdirs` as names.  Hidden entries are skipped.
 */
static int list_dir(folder_run *r, const char *rel, strvec *files, strvec *subdirs)
{
	DIR *d = NULL;
	struct dirent *de;
	int rc = 0;

	int fd = openat(r->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return import_fail(r->c, errno_code(errno), "%s/%s: cannot open directory: %s",
			    r->dir, rel, strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		rc = import_fail(r->c, IBSTORE_EIO, "%s/%s: cannot read directory: %s", r->dir,
			  rel, strerror(errno));
		close(fd);
		return rc;
	}
	for (;;) {
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = import_fail(r->c, IBSTORE_EIO, "%s/%s: cannot read directory: %s",
					  r->dir, rel, strerror(errno));
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = import_fail(r->c, IBSTORE_EIO, "%s/%s/%s: cannot stat: %s", r->dir, rel,
				  de->d_name, strerror(errno));
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			if (fstatat(dirfd(d), de->d_name, &st, 0)) {
				rc = import_fail(r->c, IBSTORE_EIO,
					  "%s/%s/%s: cannot follow symbolic link: %s", r->dir,
					  rel, de->d_name, strerror(errno));
				break;
			}
			if (!S_ISREG(st.st_mode))
				continue; /* links to directories are never followed */
		} else if (S_ISDIR(st.st_mode)) {
			rc = strvec_push(subdirs, strdup(de->d_name));
			if (rc)
				break;
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		r->total += (unsigned long long)st.st_size;
		rc = strvec_push(files, join(rel, de->d_name));
		if (rc)
			break;
	}
	closedir(d);
	if (rc == IBSTORE_ENOMEM)
		import_fail(r->c, rc, "%s/%s: out of memory listing directory", r->dir, rel);
	return rc;
}

/* Collects every file below `rel`, depth first; the caller sorts. */
static int walk(folder_run *r, const char *rel, strvec *files)
{
	strvec subdirs = { 0 };
	int rc = list_dir(r, rel, files, &subdirs);

	for (size_t i = 0; rc == 0 && i < subdirs.n; i++) {
		char *child = join(rel, subdirs.v[i]);

		if (!child) {
			rc = import_fail(r->c, IBSTORE_ENOMEM, "%s/%s: out of memory", r->dir, rel);
			break;
		}
		rc = walk(r, child, files);
		free(child);
	}
	strvec_free(&subdirs);
	return rc;
}

/* Reads file `rel` whole into r->buf; *len gets its size. */
static int read_file(folder_run *r, const char *rel, size_t *len)
{
	struct stat st;
	size_t done = 0;
	int rc = 0;

	int fd = import_open(r->c, r->rootfd, r->dir, rel, "the file listed", 1, &st);
	if (fd < 0)
		return fd;
	if ((unsigned long long)st.st_size > FOLDER_MAX_SAMPLE) {
		rc = import_fail(r->c, IBSTORE_ETOOBIG,
			  "%s/%s: %llu bytes exceeds the sample limit of 4 GiB - 1", r->dir,
			  rel, (unsigned long long)st.st_size);
		goto fail;
	}
	size_t size = (size_t)st.st_size;
	if (size > r->bufcap || !r->buf) {
		size_t cap = size > 4096 ? size : 4096;
		unsigned char *b = realloc(r->buf, cap);

		if (!b) {
			rc = import_fail(r->c, IBSTORE_ENOMEM, "%s/%s: out of memory for %zu bytes",
				  r->dir, rel, size);
			goto fail;
		}
		r->buf = b;
		r->bufcap = cap;
	}
	rc = import_read_full(r->c, fd, r->buf, size, &done, r->dir, rel);
	if (rc)
		goto fail;
	if (done < size) {
		rc = import_fail(r->c, IBSTORE_EIO,
				 "%s/%s: file shrank while being read (%zu of %zu bytes)", r->dir,
				 rel, done, size);
		goto fail;
	}
	*len = size;
fail:
	close(fd);
	return rc;
}

/* Adds the (already listed) files of class `label`. */
static int add_class(folder_run *r, int32_t label, const char *name, strvec *files)
{
	int rc = ibstore_writer_set_class_name(r->c->w, label, name);
	if (rc)
		return import_fail(r->c, rc, "%s/%s: %s", r->dir, name, ibstore_writer_errmsg(r->c->w));
	strvec_sort(files);
	for (size_t i = 0; i < files->n; i++) {
		size_t len = 0;

		rc = read_file(r, files->v[i], &len);
		if (rc)
			return rc;
		rc = ibstore_writer_add(r->c->w, r->buf, len, label, files->v[i], NULL);
		if (rc)
			return import_fail(r->c, rc, "%s/%s: %s", r->dir, files->v[i],
				    ibstore_writer_errmsg(r->c->w));
		r->samples++;
		r->bytes_in += len;
		import_progress(r->c, r->samples, FOLDER_PROGRESS_EVERY, r->samples, r->bytes_in);
	}
	return 0;
}

int import_folder(import_ctx *c, const char *dir)
{
	folder_run r = { .c = c, .dir = dir, .rootfd = -1 };
	strvec classes = { 0 }, top_files = { 0 };
	strvec *per_class = NULL;

	if (!c || !c->w)
		return IBSTORE_EINVAL;
	if (!dir)
		return import_fail(c, IBSTORE_EINVAL, "import_folder: missing directory");

	r.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r.rootfd < 0)
		return import_fail(c, errno_code(errno), "%s: cannot open directory: %s", dir,
			    strerror(errno));

	int rc = list_dir(&r, ".", &top_files, &classes);
	if (rc)
		goto fail;
	r.total = 0; /* files directly in DIR are not samples */
	if (classes.n == 0) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: no samples found: no class sub-directories "
			  "(expected %s/<class>/<files>)", dir, dir);
		goto fail;
	}
	if (classes.n > INT32_MAX) {
		rc = import_fail(c, IBSTORE_ETOOBIG, "%s: too many class directories (%zu)", dir,
			  classes.n);
		goto fail;
	}
	strvec_sort(&classes);

	rc = ibstore_writer_set_attr(c->w, "source", "folder");
	if (rc) {
		rc = import_fail(c, rc, "%s: %s", dir, ibstore_writer_errmsg(c->w));
		goto fail;
	}
	/* Every class is listed first, so the total size is known up front. */
	per_class = calloc(classes.n, sizeof(*per_class));
	if (!per_class) {
		rc = import_fail(c, IBSTORE_ENOMEM, "%s: out of memory", dir);
		goto fail;
	}
	for (size_t k = 0; k < classes.n; k++) {
		rc = walk(&r, classes.v[k], &per_class[k]);
		if (rc)
			goto fail;
	}
	if (c->total)
		c->total(c->progress_ctx, r.total);
	for (size_t k = 0; k < classes.n; k++) {
		rc = add_class(&r, (int32_t)k, classes.v[k], &per_class[k]);
		strvec_free(&per_class[k]);
		if (rc)
			goto fail;
	}
	if (r.samples == 0) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: no samples found: %zu class director%s but no files in them",
			  dir, classes.n, classes.n == 1 ? "y" : "ies");
		goto fail;
	}
	import_progress(c, 0, 1, r.samples, r.bytes_in);

fail:
	for (size_t k = 0; per_class != NULL && k < classes.n; k++)
		strvec_free(&per_class[k]);
	free(per_class);
	strvec_free(&classes);
	strvec_free(&top_files);
	free(r.buf);
	if (r.rootfd >= 0)
		close(r.rootfd);
	return rc;
}
