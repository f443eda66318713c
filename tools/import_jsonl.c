/*
 * import_jsonl.c — JSON Lines: one sample per line (see import.h).
 *
 * The JSON scanner below is deliberately small and strict: it validates a
 * line as one RFC 8259 value (UTF-8 checked, escapes and surrogate pairs
 * checked, numbers by the grammar, nesting bounded), and for a top-level
 * object it reports where the values of the requested fields are.  It
 * never allocates except to decode the one string value asked for, and it
 * never reads past the line it is given.
 */
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

#define JSON_MAX_DEPTH 512
#define JSONL_PROGRESS_EVERY 256u
#define JSONL_MAX_SAMPLE 0xffffffffull

typedef struct jscan {
	const uint8_t *start, *p, *end;
	const char *err; /* why the scan failed; p is where */
} jscan;

/* A value found in the top-level object. */
typedef struct jfield {
	const char *name;
	size_t name_len;
	const uint8_t *v, *v_end; /* its JSON text, NULL when absent */
} jfield;

static int jerr(jscan *s, const char *why)
{
	s->err = why;
	return -1;
}

static void ws(jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hex4(const uint8_t *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		uint8_t c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of a valid UTF-8 sequence at p (strict: no overlongs, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
	size_t n = (size_t)(end - p);
	uint8_t c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Scans a string starting at its opening quote; p ends after the closing
 * quote.  When `out` is given the decoded bytes are written there (it needs
 * as many bytes as the string's JSON text) and their count to *out_len.
 */
static int string(jscan *s, uint8_t *out, size_t *out_len)
{
	size_t o = 0;

	s->p++; /* the opening quote */
	for (;;) {
		if (s->p >= s->end)
			return jerr(s, "unterminated string");
		uint8_t c = *s->p;

		if (c == '"') {
			s->p++;
			break;
		}
		if (c < 0x20)
			return jerr(s, "control character in a string");
		if (c != '\\') {
			size_t n = utf8_seq(s->p, s->end);

			if (n == 0)
				return jerr(s, "invalid UTF-8 in a string");
			if (out)
				memcpy(out + o, s->p, n);
			o += n;
			s->p += n;
			continue;
		}
		if (s->end - s->p < 2)
			return jerr(s, "unterminated escape");
		uint8_t e = s->p[1];
		const char *simple = "\"\\/bfnrt", *dec = "\"\\/\b\f\n\r\t";
		const char *k = e ? strchr(simple, e) : NULL;

		if (k) {
			if (out)
				out[o] = (uint8_t)dec[k - simple];
			o++;
			s->p += 2;
			continue;
		}
		if (e != 'u')
			return jerr(s, "invalid escape");
		unsigned cp, lo;

		if (s->end - s->p < 6 || hex4(s->p + 2, &cp))
			return jerr(s, "invalid \\u escape");
		s->p += 6;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return jerr(s, "lone low surrogate");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
			    hex4(s->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return jerr(s, "high surrogate without a low surrogate");
			s->p += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		uint8_t u[4];
		size_t n;

		if (cp < 0x80) {
			u[0] = (uint8_t)cp;
			n = 1;
		} else if (cp < 0x800) {
			u[0] = (uint8_t)(0xc0 | (cp >> 6));
			u[1] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			u[0] = (uint8_t)(0xe0 | (cp >> 12));
			u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			u[0] = (uint8_t)(0xf0 | (cp >> 18));
			u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			u[3] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 4;
		}
		if (out)
			memcpy(out + o, u, n);
		o += n;
	}
	if (out_len)
		*out_len = o;
	return 0;
}

static int digits(jscan *s)
{
	const uint8_t *b = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > b ? 0 : -1;
}

static int number(jscan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || digits(s))
		return jerr(s, "invalid number");
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (digits(s))
			return jerr(s, "invalid number: digits expected after '.'");
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s))
			return jerr(s, "invalid number: digits expected in the exponent");
	}
	return 0;
}

static int literal(jscan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return jerr(s, "invalid literal (expected a JSON value)");
	s->p += n;
	return 0;
}

static int value(jscan *s, int depth, jfield *fields, int nfields);

/* An object or array; for depth 0 objects, fields are located. */
static int container(jscan *s, int depth, jfield *fields, int nfields)
{
	int obj = *s->p == '{';
	uint8_t close = obj ? '}' : ']';

	if (depth >= JSON_MAX_DEPTH)
		return jerr(s, "nesting deeper than 512 levels");
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	for (;;) {
		jfield *match = NULL;

		if (obj) {
			if (s->p >= s->end || *s->p != '"')
				return jerr(s, "expected a string (an object key)");
			const uint8_t *k = s->p;

			if (string(s, NULL, NULL))
				return -1;
			for (int i = 0; depth == 0 && i < nfields; i++) {
				/* Compare the decoded key; keys are short, decode on the stack. */
				size_t klen = (size_t)(s->p - k), dl;
				uint8_t tmp[256];
				jscan ks = {.start = k, .p = k, .end = s->p};

				if (!fields[i].name || klen > sizeof tmp)
					continue;
				if (string(&ks, tmp, &dl) == 0 && dl == fields[i].name_len &&
				    memcmp(tmp, fields[i].name, dl) == 0)
					match = &fields[i]; /* a later duplicate wins, as in Python */
			}
			ws(s);
			if (s->p >= s->end || *s->p != ':')
				return jerr(s, "expected ':' after an object key");
			s->p++;
			ws(s);
		}
		const uint8_t *vb = s->p;

		if (value(s, depth + 1, NULL, 0))
			return -1;
		if (match) {
			match->v = vb;
			match->v_end = s->p;
		}
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return 0;
		}
		return jerr(s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int value(jscan *s, int depth, jfield *fields, int nfields)
{
	if (s->p >= s->end)
		return jerr(s, "expected a JSON value");
	switch (*s->p) {
	case '{':
	case '[':
		return container(s, depth, fields, nfields);
	case '"':
		return string(s, NULL, NULL);
	case 't':
		return literal(s, "true");
	case 'f':
		return literal(s, "false");
	case 'n':
		return literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return number(s);
		return jerr(s, "expected a JSON value");
	}
}

/* ---- the importer --------------------------------------------------------- */

typedef struct jsonl_run {
	import_ctx *c;
	import_jsonl_opts *o;
	const char *path;
	unsigned long long line;
	uint8_t *dec;           /* decoded string field */
	size_t dec_cap;
	import_keybuf key;       /* with line_keys */
	char why[512];
	unsigned long long samples, bytes;
} jsonl_run;

static int bad(jsonl_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Describes why the current line is bad into r->why; returns 1. */
static int bad(jsonl_run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof r->why, fmt, ap);
	va_end(ap);
	return 1;
}

/* An integer label (or null: none) from a field's JSON text. */
static int parse_label(const uint8_t *v, const uint8_t *e, int32_t *out)
{
	if (e - v == 4 && memcmp(v, "null", 4) == 0) {
		*out = IBSTORE_NO_LABEL;
		return 0;
	}
	return import_parse_label(v, (size_t)(e - v), out);
}

/*
 * Handles one line (without its line end): 0 added or blank, 1 bad (reason
 * in r->why), or a negative code for a failure of the writer.
 */
static int do_line(jsonl_run *r, const uint8_t *line, size_t len)
{
	import_ctx *c = r->c;
	jfield f[2] = {
		{ .name = r->o->field, .name_len = r->o->field ? strlen(r->o->field) : 0 },
		{ .name = r->o->label_field,
		  .name_len = r->o->label_field ? strlen(r->o->label_field) : 0 },
	};
	jscan s = { .start = line, .p = line, .end = line + len };
	int32_t label = IBSTORE_NO_LABEL;
	const uint8_t *data = line;
	size_t dlen = len;

	ws(&s);
	if (s.p == s.end)
		return 0; /* blank line */
	int want_fields = f[0].name != NULL || f[1].name != NULL;

	if (want_fields && *s.p != '{')
		return bad(r, "column %zu: not a JSON object (fields were asked for)",
			   (size_t)(s.p - line) + 1);
	if (value(&s, 0, f, 2) == 0) {
		ws(&s);
		if (s.p != s.end)
			jerr(&s, "text after the JSON value");
	}
	if (s.err)
		return bad(r, "column %zu: malformed JSON: %s", (size_t)(s.p - line) + 1, s.err);
	if (f[0].name) {
		if (!f[0].v)
			return bad(r, "no field \"%s\"", f[0].name);
		data = f[0].v;
		dlen = (size_t)(f[0].v_end - f[0].v);
		if (*f[0].v == '"') {
			if (dlen > r->dec_cap) {
				uint8_t *b = realloc(r->dec, dlen);

				if (!b)
					return import_fail(c, IBSTORE_ENOMEM, "%s:%llu: out of memory",
						    r->path, r->line);
				r->dec = b;
				r->dec_cap = dlen;
			}
			jscan vs = { .start = f[0].v, .p = f[0].v, .end = f[0].v_end };

			string(&vs, r->dec, &dlen); /* validated above */
			data = r->dec;
		}
	}
	if (f[1].name) {
		if (!f[1].v)
			return bad(r, "no label field \"%s\"", f[1].name);
		if (parse_label(f[1].v, f[1].v_end, &label))
			return bad(r, "label field \"%s\" is %.*s, not an integer in 32 bits (or "
				   "null)", f[1].name, (int)(f[1].v_end - f[1].v > 40 ? 40 :
							     f[1].v_end - f[1].v),
				   (const char *)f[1].v);
	}
	if (dlen > JSONL_MAX_SAMPLE)
		return bad(r, "sample of %zu bytes exceeds 4 GiB - 1", dlen);
	const char *key = NULL;

	if (r->o->line_keys && !(key = import_key(c, &r->key, "%s:%llu", r->path, r->line)))
		return IBSTORE_ENOMEM;
	int rc = ibstore_writer_add(c->w, data, dlen, label, key, NULL);

	if (rc)
		return import_fail(c, rc, "%s:%llu: %s", r->path, r->line, ibstore_writer_errmsg(c->w));
	r->samples++;
	return 0;
}

static int read_file(jsonl_run *r)
{
	import_ctx *c = r->c;
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	struct stat st;
	int fd = import_open(c, AT_FDCWD, NULL, r->path, "a JSONL file", 0, &st);
	if (fd < 0)
		return fd;
	FILE *f = fdopen(fd, "rb");
	if (!f) {
		close(fd);
		return import_fail(c, IBSTORE_ENOMEM, "%s: out of memory", r->path);
	}
	(void)posix_fadvise(fileno(f), 0, 0, POSIX_FADV_SEQUENTIAL);
	r->line = 0;
	errno = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		size_t len = (size_t)n;

		r->line++;
		r->bytes += len;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		rc = do_line(r, (const uint8_t *)line, len);
		if (rc < 0)
			break;
		if (rc > 0) {
			if (!r->o->skip_bad) {
				rc = import_fail(c, IBSTORE_EFORMAT, "%s:%llu: %s", r->path, r->line,
					  r->why);
				break;
			}
			r->o->skipped++;
			if (c->warn) {
				char msg[700];

				snprintf(msg, sizeof msg, "%s:%llu: %s (line skipped)", r->path,
					 r->line, r->why);
				c->warn(c->progress_ctx, msg);
			}
			rc = 0;
		}
		import_progress(c, r->line, JSONL_PROGRESS_EVERY, r->samples, r->bytes);
		errno = 0;
	}
	if (!rc && ferror(f))
		rc = import_fail(c, IBSTORE_EIO, "%s: read failed after line %llu: %s", r->path, r->line,
			  strerror(errno ? errno : EIO));
	free(line);
	fclose(f);
	return rc;
}

int import_jsonl(import_ctx *c, const char *const *paths, int npaths, import_jsonl_opts *o)
{
	import_jsonl_opts none = { 0 };
	jsonl_run r = { .c = c, .o = o ? o : &none };

	if (!c || !c->w || !paths || npaths < 1)
		return c ? import_fail(c, IBSTORE_EINVAL, "import_jsonl: no files given") : IBSTORE_EINVAL;
	r.o->skipped = 0;
	if ((r.o->field && !*r.o->field) || (r.o->label_field && !*r.o->label_field))
		return import_fail(c, IBSTORE_EINVAL, "empty field name");
	import_total_of_files(c, paths, npaths);
	int rc = ibstore_writer_set_attr(c->w, "source", "jsonl");
	if (rc)
		return import_fail(c, rc, "%s", ibstore_writer_errmsg(c->w));
	for (int i = 0; i < npaths && rc == 0; i++) {
		r.path = paths[i];
		rc = read_file(&r);
	}
	if (!rc && r.samples == 0)
		rc = import_fail(c, IBSTORE_EFORMAT, "%s%s: no samples found (%s)", paths[0],
			  npaths > 1 ? " ..." : "",
			  r.o->skipped ? "every line was bad" : "no non-blank lines");
	if (!rc)
		import_progress(c, 0, 1, r.samples, r.bytes);
	free(r.dec);
	free(r.key.s);
	return rc;
}
