/*
 * import_tar.c — WebDataset tar shards: members grouped by stem into
 * samples (see import.h for the convention and its choices).
 *
 * The archive is read strictly sequentially through one reused buffer;
 * payloads at least as large as the buffer are read straight into the
 * sample buffer, and members that are not kept are skipped with lseek when
 * the input is a regular file.  Nothing but the current sample's payload is
 * held in memory.
 *
 * Headers understood: ustar (name + prefix), GNU ("ustar  " magic,
 * 'L' long names, 'K' long link names skipped, base-256 sizes), pax ('x'
 * per-member records: path and size; 'g' global records are skipped).
 * Every header's checksum is checked (unsigned sum, or the historical
 * signed sum).  Sparse ('S') and multi-volume ('M') members are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"

#define BLOCK 512
#define RD_BUF (1u << 20)
#define META_MAX (1u << 20)     /* longest GNU long name / pax header accepted */
#define LABEL_MAX 64            /* longest label member text */
#define MAX_EXTS 64
#define TAR_MAX_SAMPLE 0xffffffffull
#define TAR_PROGRESS_EVERY 64u

/* A sequential reader over one archive. */
typedef struct rd {
	int fd;
	uint8_t *buf;
	size_t pos, len;     /* unread bytes are buf[pos..len) */
	uint64_t off;        /* archive bytes consumed */
	uint64_t size;       /* file size, or UINT64_MAX when not a regular file */
} rd;

typedef struct tar_run {
	import_ctx *c;
	const char *path;        /* archive being read, for messages */
	char *exts[MAX_EXTS];    /* payload extensions, best first */
	int nexts;
	const char *label_ext;
	rd r;
	/* the sample being assembled */
	char *stem;              /* NULL when none */
	uint64_t stem_off;       /* header offset of its first member */
	uint8_t *payload;
	size_t payload_cap, payload_len;
	int best;                /* index into exts of the payload kept, -1: none */
	char best_ext[256];
	int32_t label;
	int have_label;
	/* dataset-wide */
	char *first_ext;         /* recorded as attribute "ext" */
	import_keybuf key;       /* scratch */
	unsigned long long samples, bytes_before; /* bytes of earlier archives */
} tar_run;

/* ---- reading ------------------------------------------------------------ */

/* Reads up to n bytes; returns the count (short only at end of file) or -errno. */
static ssize_t rd_read(rd *r, void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t done = 0;

	while (done < n) {
		if (r->pos < r->len) {
			size_t k = r->len - r->pos;

			if (k > n - done)
				k = n - done;
			memcpy(d + done, r->buf + r->pos, k);
			r->pos += k;
			done += k;
			continue;
		}
		/* Buffer empty: large reads go straight to the destination. */
		int direct = n - done >= RD_BUF;
		ssize_t got = read(r->fd, direct ? d + done : r->buf,
				   direct ? n - done : RD_BUF);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break;
		if (direct) {
			done += (size_t)got;
		} else {
			r->pos = 0;
			r->len = (size_t)got;
		}
	}
	r->off += done;
	return (ssize_t)done;
}

/* Skips n bytes; returns 0, 1 when the file ends first, or -errno. */
static int rd_skip(rd *r, uint64_t n)
{
	size_t k = r->len - r->pos;

	if (k > n)
		k = (size_t)n;
	r->pos += k;
	r->off += k;
	n -= k;
	if (n == 0)
		return 0;
	if (r->size != UINT64_MAX) {
		if (r->off + n > r->size) {
			r->off = r->size;
			return 1;
		}
		if (lseek(r->fd, (off_t)n, SEEK_CUR) < 0)
			return -errno;
		r->off += n;
		return 0;
	}
	while (n > 0) {
		/* The buffer is empty here: read into it and drop the bytes. */
		ssize_t got = read(r->fd, r->buf, n < RD_BUF ? (size_t)n : RD_BUF);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return 1;
		r->off += (uint64_t)got;
		n -= (uint64_t)got;
	}
	return 0;
}

/* ---- headers -------------------------------------------------------------- */

/* Octal field (NUL/space terminated, leading spaces), or GNU base-256. */
static int parse_number(const uint8_t *f, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (n > 0 && (f[0] & 0x80)) {
		if (f[0] != 0x80)
			return -1; /* negative or huge */
		for (i = 1; i < n; i++) {
			if (v >> 56)
				return -1;
			v = (v << 8) | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < n && f[i] == ' ')
		i++;
	size_t digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v >> 61)
			return -1;
		v = (v << 3) | (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	if (digits == 0)
		return -1;
	*out = v;
	return 0;
}

static int checksum_ok(const uint8_t *h)
{
	uint64_t want;
	unsigned long usum = 0;
	long ssum = 0;

	if (parse_number(h + 148, 8, &want))
		return 0;
	for (int i = 0; i < BLOCK; i++) {
		uint8_t b = (i >= 148 && i < 156) ? ' ' : h[i];

		usum += b;
		ssum += (signed char)b;
	}
	return want == usum || (long)want == ssum;
}

static int all_zero(const uint8_t *h)
{
	for (int i = 0; i < BLOCK; i++)
		if (h[i])
			return 0;
	return 1;
}

/* Copies a fixed-width, possibly unterminated, field. */
static size_t field_str(char *dst, const uint8_t *f, size_t n)
{
	size_t l = strnlen((const char *)f, n);

	memcpy(dst, f, l);
	dst[l] = '\0';
	return l;
}

/*
 * Checks a member path and normalises it in place: leading "./" removed;
 * absolute paths, ".." components and empty names are refused.  Returns a
 * reason or NULL.
 */
static const char *clean_path(char *p)
{
	if (p[0] == '/')
		return "absolute path";
	while (p[0] == '.' && p[1] == '/') {
		size_t i = 2;

		while (p[i] == '/')
			i++;
		memmove(p, p + i, strlen(p + i) + 1);
	}
	for (const char *s = p; *s;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);

		if (l == 2 && s[0] == '.' && s[1] == '.')
			return "path with a '..' component";
		s += l;
		while (*s == '/')
			s++;
	}
	if (p[0] == '\0')
		return "empty name";
	return NULL;
}

/*
 * Parses pax records "LEN key=value\n" of an 'x' header: keeps path and
 * size.  Returns a reason or NULL.
 */
static const char *parse_pax(char *d, size_t n, char **path, uint64_t *size, int *has_size)
{
	size_t i = 0;

	while (i < n) {
		size_t len = 0, j = i;

		while (j < n && d[j] >= '0' && d[j] <= '9') {
			len = len * 10 + (size_t)(d[j] - '0');
			if (len > n)
				return "bad pax record length";
			j++;
		}
		if (j == i || j >= n || d[j] != ' ' || len < (j - i) + 3 || i + len > n ||
		    d[i + len - 1] != '\n')
			return "malformed pax record";
		char *kv = d + j + 1;
		size_t kvlen = i + len - 1 - (j + 1);
		char *eq = memchr(kv, '=', kvlen);

		if (!eq)
			return "pax record without '='";
		size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
		char *val = eq + 1;

		if (klen == 4 && memcmp(kv, "path", 4) == 0) {
			if (memchr(val, '\0', vlen))
				return "pax path contains a NUL byte";
			free(*path);
			*path = strndup(val, vlen);
			if (*path == NULL)
				return "out of memory";
		} else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
			uint64_t v = 0;

			if (vlen == 0 || vlen > 19)
				return "bad pax size";
			for (size_t k = 0; k < vlen; k++) {
				if (val[k] < '0' || val[k] > '9')
					return "bad pax size";
				v = v * 10 + (uint64_t)(val[k] - '0');
			}
			*size = v;
			*has_size = 1;
		}
		i += len;
	}
	return NULL;
}

/* ---- samples -------------------------------------------------------------- */

static int ext_index(const tar_run *t, const char *ext)
{
	for (int i = 0; i < t->nexts; i++)
		if (strcasecmp(t->exts[i], ext) == 0)
			return i;
	return -1;
}

static void reset_sample(tar_run *t)
{
	free(t->stem);
	t->stem = NULL;
	t->best = -1;
	t->best_ext[0] = '\0';
	t->payload_len = 0;
	t->have_label = 0;
	t->label = IBSTORE_NO_LABEL;
}

static void report(tar_run *t, int force)
{
	import_ctx *c = t->c;

	import_progress(c, t->samples, force ? 1 : TAR_PROGRESS_EVERY, t->samples,
			t->bytes_before + t->r.off);
}

/* Adds the sample assembled so far (if any). */
static int finish_sample(tar_run *t)
{
	import_ctx *c = t->c;
	int rc;

	if (!t->stem)
		return 0;
	if (t->best < 0) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: sample '%s' (member at offset %llu) has no payload member; "
			  "looked for extensions %s%s (see --payload)",
			  t->path, t->stem, (unsigned long long)t->stem_off, t->exts[0],
			  t->nexts > 1 ? ", ..." : "");
		return rc;
	}
	if (!t->first_ext) {
		t->first_ext = strdup(t->best_ext);
		if (!t->first_ext)
			return import_fail(c, IBSTORE_ENOMEM, "out of memory");
		rc = ibstore_writer_set_attr(c->w, "ext", t->best_ext);
		if (rc)
			return import_fail(c, rc, "%s: %s", t->path, ibstore_writer_errmsg(c->w));
	}
	const char *key = t->stem;
	if (strcmp(t->best_ext, t->first_ext) &&
	    !(key = import_key(c, &t->key, "%s.%s", t->stem, t->best_ext)))
		return IBSTORE_ENOMEM;
	rc = ibstore_writer_add(c->w, t->payload, t->payload_len, t->label, key, NULL);
	if (rc)
		return import_fail(c, rc, "%s: sample '%s' (member at offset %llu): %s", t->path, key,
			    (unsigned long long)t->stem_off, ibstore_writer_errmsg(c->w));
	t->samples++;
	report(t, 0);
	reset_sample(t);
	return 0;
}

/* Reads or skips one regular member's data (not its padding). */
static int take_member(tar_run *t, char *name, uint64_t size, uint64_t hoff)
{
	import_ctx *c = t->c;
	char *base = strrchr(name, '/');
	int rc;

	base = base ? base + 1 : name;
	if (base[0] == '.' || base[0] == '\0')
		goto skip; /* hidden files (and "dir/" names) are not samples */
	char *dot = strchr(base, '.');
	const char *ext = dot ? dot + 1 : "";
	size_t stemlen = dot ? (size_t)(dot - name) : strlen(name);

	if (!t->stem || strlen(t->stem) != stemlen || memcmp(t->stem, name, stemlen) != 0) {
		if ((rc = finish_sample(t)))
			return rc;
		t->stem = strndup(name, stemlen);
		if (!t->stem)
			return import_fail(c, IBSTORE_ENOMEM, "out of memory");
		t->stem_off = hoff;
	}
	if (strcasecmp(ext, t->label_ext) == 0) {
		uint8_t text[LABEL_MAX];

		if (t->have_label)
			return import_fail(c, IBSTORE_EFORMAT,
				    "%s: member '%s' at offset %llu: a second label member for "
				    "sample '%s'", t->path, name, (unsigned long long)hoff, t->stem);
		if (size > LABEL_MAX)
			return import_fail(c, IBSTORE_EFORMAT,
				    "%s: member '%s' at offset %llu: label member of %llu bytes "
				    "(expected a decimal integer)", t->path, name,
				    (unsigned long long)hoff, (unsigned long long)size);
		ssize_t got = rd_read(&t->r, text, (size_t)size);

		if (got < 0)
			return import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path,
				    strerror((int)-got));
		if ((uint64_t)got < size)
			goto truncated;
		if (import_parse_label(text, (size_t)size, &t->label))
			return import_fail(c, IBSTORE_EFORMAT,
				    "%s: member '%s' at offset %llu: label '%.*s' is not a "
				    "decimal 32-bit integer", t->path, name,
				    (unsigned long long)hoff, (int)size, (const char *)text);
		t->have_label = 1;
		return 0;
	}
	int idx = ext_index(t, ext);

	if (idx >= 0 && idx == t->best)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: member '%s' at offset %llu: sample '%s' already has a "
			    ".%s member", t->path, name, (unsigned long long)hoff, t->stem, ext);
	if (idx < 0 || (t->best >= 0 && idx > t->best))
		goto skip;
	if (size > TAR_MAX_SAMPLE)
		return import_fail(c, IBSTORE_ETOOBIG,
			    "%s: member '%s' at offset %llu: %llu bytes exceeds the sample "
			    "limit of 4 GiB - 1", t->path, name, (unsigned long long)hoff,
			    (unsigned long long)size);
	if (size > t->payload_cap) {
		uint8_t *b = realloc(t->payload, (size_t)size);

		if (!b)
			return import_fail(c, IBSTORE_ENOMEM, "%s: member '%s': out of memory for %llu "
				    "bytes", t->path, name, (unsigned long long)size);
		t->payload = b;
		t->payload_cap = (size_t)size;
	}
	ssize_t got = rd_read(&t->r, t->payload, (size_t)size);

	if (got < 0)
		return import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path, strerror((int)-got));
	if ((uint64_t)got < size)
		goto truncated;
	t->payload_len = (size_t)size;
	t->best = idx;
	snprintf(t->best_ext, sizeof t->best_ext, "%s", ext);
	return 0;
skip:
	rc = rd_skip(&t->r, size);
	if (rc < 0)
		return import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path, strerror(-rc));
	if (!rc)
		return 0;
truncated:
	return import_fail(c, IBSTORE_ETRUNCATED,
		    "%s: member '%s' at offset %llu is truncated: the archive ends at %llu, "
		    "inside its %llu bytes of data", t->path, name, (unsigned long long)hoff,
		    (unsigned long long)t->r.off, (unsigned long long)size);
}

/* Reads a GNU long name or a pax header's data (size bytes) into a new string. */
static int read_meta(tar_run *t, uint64_t size, uint64_t hoff, const char *what, char **out)
{
	import_ctx *c = t->c;

	if (size > META_MAX)
		return import_fail(c, IBSTORE_EFORMAT, "%s: %s header at offset %llu: %llu bytes is "
			    "too long", t->path, what, (unsigned long long)hoff,
			    (unsigned long long)size);
	char *d = malloc((size_t)size + 1);

	if (!d)
		return import_fail(c, IBSTORE_ENOMEM, "out of memory");
	ssize_t got = rd_read(&t->r, d, (size_t)size);

	if (got < 0 || (uint64_t)got < size) {
		free(d);
		if (got < 0)
			return import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path,
				    strerror((int)-got));
		return import_fail(c, IBSTORE_ETRUNCATED, "%s: %s header at offset %llu is truncated",
			    t->path, what, (unsigned long long)hoff);
	}
	d[size] = '\0';
	*out = d;
	return 0;
}

static int skip_padding(tar_run *t, uint64_t size, const char *name, uint64_t hoff)
{
	uint64_t pad = (BLOCK - size % BLOCK) % BLOCK;
	int rc = rd_skip(&t->r, pad);

	if (rc < 0)
		return import_fail(t->c, IBSTORE_EIO, "%s: read failed: %s", t->path, strerror(-rc));
	if (rc > 0)
		return import_fail(t->c, IBSTORE_ETRUNCATED,
			    "%s: member '%s' at offset %llu is truncated: the archive ends inside "
			    "its padding", t->path, name, (unsigned long long)hoff);
	return 0;
}

static int read_archive(tar_run *t)
{
	import_ctx *c = t->c;
	uint8_t h[BLOCK];
	char *longname = NULL, *paxpath = NULL, *meta = NULL;
	uint64_t paxsize = 0;
	int has_paxsize = 0, rc = 0;
	char name[256 + 1 + 155 + 1];

	for (;;) {
		uint64_t hoff = t->r.off;
		ssize_t got = rd_read(&t->r, h, BLOCK);

		if (got < 0) {
			rc = import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path,
				  strerror((int)-got));
			break;
		}
		if (got == 0 && !longname && !paxpath && !has_paxsize)
			break; /* end of file without the end-of-archive blocks */
		if (got < BLOCK) {
			rc = import_fail(c, IBSTORE_ETRUNCATED,
				  "%s: truncated header at offset %llu (%zd of 512 bytes)", t->path,
				  (unsigned long long)hoff, got);
			break;
		}
		if (all_zero(h)) {
			if (longname || paxpath || has_paxsize)
				rc = import_fail(c, IBSTORE_EFORMAT,
					  "%s: end of archive at offset %llu right after a long-name "
					  "or pax header", t->path, (unsigned long long)hoff);
			break; /* end-of-archive marker; what follows is ignored */
		}
		/* The name first, so even a bad checksum can name the member. */
		size_t nl = 0;
		if (memcmp(h + 257, "ustar", 5) == 0 && memcmp(h + 257, "ustar  ", 8) != 0 &&
		    h[345] != '\0') {
			nl = field_str(name, h + 345, 155);
			name[nl++] = '/';
		}
		field_str(name + nl, h, 100);
		if (!checksum_ok(h)) {
			rc = import_fail(c, IBSTORE_ECORRUPT,
				  "%s: member '%s' at offset %llu: header checksum mismatch "
				  "(not a tar archive, or corrupted)", t->path, name,
				  (unsigned long long)hoff);
			break;
		}
		uint64_t size;
		if (parse_number(h + 124, 12, &size)) {
			rc = import_fail(c, IBSTORE_EFORMAT, "%s: member '%s' at offset %llu: bad size "
				  "field", t->path, name, (unsigned long long)hoff);
			break;
		}
		char type = (char)h[156];
		if (type == 'L' || type == 'x' || type == 'K' || type == 'g') {
			const char *what = type == 'L' ? "GNU long name" :
					   type == 'K' ? "GNU long link" : "pax";
			if ((rc = read_meta(t, size, hoff, what, &meta)))
				break;
			if ((rc = skip_padding(t, size, what, hoff))) {
				free(meta); /* the archive ends inside its padding */
				break;
			}
			if (type == 'L') {
				free(longname);
				longname = meta;
			} else if (type == 'x') {
				const char *why = parse_pax(meta, (size_t)size, &paxpath, &paxsize,
							    &has_paxsize);
				free(meta);
				if (why) {
					rc = import_fail(c, IBSTORE_EFORMAT, "%s: pax header at offset "
						  "%llu: %s", t->path, (unsigned long long)hoff, why);
					meta = NULL;
					break;
				}
			} else {
				free(meta);
			}
			meta = NULL;
			continue;
		}
		if (has_paxsize)
			size = paxsize;
		char *full = paxpath ? paxpath : longname ? longname : name;
		const char *why = clean_path(full);
		if (why) {
			rc = import_fail(c, IBSTORE_EFORMAT, "%s: member '%s' at offset %llu: %s", t->path,
				  full, (unsigned long long)hoff, why);
			break;
		}
		if (type == 'S' || type == 'M') {
			rc = import_fail(c, IBSTORE_EFORMAT, "%s: member '%s' at offset %llu: %s members "
				  "are not supported", t->path, full, (unsigned long long)hoff,
				  type == 'S' ? "sparse" : "multi-volume");
			break;
		}
		if (type == '0' || type == '\0' || type == '7') {
			rc = take_member(t, full, size, hoff);
		} else {
			/* Directories, links, devices, FIFOs: nothing to keep. */
			int k = rd_skip(&t->r, size);
			if (k < 0)
				rc = import_fail(c, IBSTORE_EIO, "%s: read failed: %s", t->path,
					  strerror(-k));
			else if (k > 0)
				rc = import_fail(c, IBSTORE_ETRUNCATED, "%s: member '%s' at offset %llu is "
					  "truncated", t->path, full, (unsigned long long)hoff);
		}
		if (!rc)
			rc = skip_padding(t, size, full, hoff);
		free(longname);
		free(paxpath);
		longname = paxpath = NULL;
		has_paxsize = 0;
		if (rc)
			break;
	}
	free(longname);
	free(paxpath);
	if (!rc)
		rc = finish_sample(t); /* a sample never spans archives */
	return rc;
}

static int split_exts(tar_run *t, const char *list)
{
	const char *s = list;

	while (*s) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);

		if (l > 0 && s[0] == '.') {
			s++;
			l--;
		}
		if (l == 0 || l > 200)
			return import_fail(t->c, IBSTORE_EINVAL, "bad payload extension list '%s'", list);
		if (t->nexts == MAX_EXTS)
			return import_fail(t->c, IBSTORE_EINVAL, "more than %d payload extensions",
				    MAX_EXTS);
		t->exts[t->nexts] = strndup(s, l);
		if (!t->exts[t->nexts])
			return import_fail(t->c, IBSTORE_ENOMEM, "out of memory");
		t->nexts++;
		s += l;
		if (*s == ',')
			s++;
	}
	if (t->nexts == 0)
		return import_fail(t->c, IBSTORE_EINVAL, "empty payload extension list");
	return 0;
}

int import_tar(import_ctx *c, const char *const *paths, int npaths, const import_tar_opts *o)
{
	tar_run t = { .c = c, .best = -1, .label = IBSTORE_NO_LABEL };

	if (!c || !c->w || !paths || npaths < 1)
		return c ? import_fail(c, IBSTORE_EINVAL, "import_tar: no archives given") : IBSTORE_EINVAL;
	t.label_ext = o && o->label_ext ? o->label_ext : "cls";
	if (t.label_ext[0] == '.')
		t.label_ext++;
	int rc = split_exts(&t, o && o->payload ? o->payload : IMPORT_TAR_PAYLOAD_DEFAULT);
	if (rc)
		goto out;
	if (ext_index(&t, t.label_ext) >= 0) {
		rc = import_fail(c, IBSTORE_EINVAL, "label extension '%s' is also a payload extension",
			  t.label_ext);
		goto out;
	}
	t.r.buf = malloc(RD_BUF);
	if (!t.r.buf) {
		rc = import_fail(c, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	import_total_of_files(c, paths, npaths);
	rc = ibstore_writer_set_attr(c->w, "source", "tar");
	if (rc) {
		rc = import_fail(c, rc, "%s", ibstore_writer_errmsg(c->w));
		goto out;
	}
	for (int i = 0; i < npaths && rc == 0; i++) {
		struct stat st;

		t.path = paths[i];
		t.r.fd = import_open(c, AT_FDCWD, NULL, paths[i], "a tar archive", 0, &st);
		if (t.r.fd < 0) {
			rc = t.r.fd;
			break;
		}
		t.r.size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX;
		t.r.pos = t.r.len = 0;
		t.r.off = 0;
		(void)posix_fadvise(t.r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		rc = read_archive(&t);
		t.bytes_before += t.r.off;
		t.r.off = 0;
		close(t.r.fd);
	}
	if (!rc && t.samples == 0)
		rc = import_fail(c, IBSTORE_EFORMAT, "%s%s: no samples found (no regular members)",
			  paths[0], npaths > 1 ? " ..." : "");
	if (!rc)
		report(&t, 1);
out:
	reset_sample(&t);
	for (int i = 0; i < t.nexts; i++)
		free(t.exts[i]);
	free(t.first_ext);
	free(t.key.s);
	free(t.payload);
	free(t.r.buf);
	return rc;
}
