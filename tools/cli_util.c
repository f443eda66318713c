/*
 * cli_util.c — helpers shared by the ibstore subcommands (see cli_util.h).
 */
#include "cli_util.h"
#include "ibstore.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* "ibstore CMD: MESSAGE\n" on stderr. */
static void say(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "ibstore %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(cmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'ibstore %s --help' for more information.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(cmd, fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAIL;
}

int cli_getopt_error(const char *cmd)
{
	/* getopt_long has already printed what was wrong. */
	fprintf(stderr, "Try 'ibstore %s --help' for more information.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_one_operand_error(const char *cmd, int given, const char *name)
{
	if (given == 0)
		return cli_usage_error(cmd, "missing %s", name);
	return cli_usage_error(cmd, "expected exactly one %s", name);
}

const char *cli_errmsg(const char *msg, int rc)
{
	return msg && msg[0] ? msg : ibstore_strerror(rc);
}

/* Parses leading decimal digits; *end points past them.  0 or -1. */
int cli_parse_prune_opt(const char *cmd, int opt, const char *arg, ibstore_prune_opts *p)
{
	switch (opt) {
	case CLI_OPT_EPOCHS:
		if (cli_parse_u32(arg, &p->epochs) || p->epochs == 0)
			return cli_usage_error(cmd, "--epochs: '%s' is not a count > 0", arg);
		return 0;
	case CLI_OPT_RATIO:
		if (cli_parse_double(arg, &p->ratio) || !(p->ratio >= 0.0 && p->ratio < 1.0))
			return cli_usage_error(cmd, "--ratio: '%s' is not a number in [0, 1)", arg);
		return 0;
	case CLI_OPT_DELTA:
		if (cli_parse_double(arg, &p->delta) || !(p->delta >= 0.0 && p->delta <= 1.0))
			return cli_usage_error(cmd, "--delta: '%s' is not a number in [0, 1]", arg);
		return 0;
	case CLI_OPT_SEED:
		if (cli_parse_u64(arg, &p->seed))
			return cli_usage_error(cmd, "--seed: '%s' is not an unsigned integer", arg);
		return 0;
	case CLI_OPT_MODE:
		if (ibstore_mode_parse(arg, &p->mode))
			return cli_usage_error(cmd, "--mode: '%s' is not native or compat", arg);
		return 0;
	case CLI_OPT_POLICY:
		if (ibstore_policy_parse(arg, &p->policy))
			return cli_usage_error(cmd, "--policy: '%s' is not infobatch, random or none",
					       arg);
		return 0;
	default:
		return -1;
	}
}

int cli_open_dataset(const char *cmd, const char *path, ibstore_dataset **ds,
		     ibstore_info *info)
{
	int rc = ibstore_dataset_open(path, ds);
	if (!rc && info)
		rc = ibstore_dataset_info_get(*ds, info);
	if (rc)
		return cli_fail(cmd, "%s", cli_errmsg(*ds ? ibstore_dataset_errmsg(*ds) : NULL, rc));
	return 0;
}

int cli_write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;

	if (!s || parse_digits(s, &v, &end) || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int cli_parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cli_parse_hxw(const char *s, uint32_t *height, uint32_t *width)
{
	char buf[32];
	uint32_t h, w;
	const char *x = s ? strchr(s, 'x') : NULL;

	if (!s)
		return -1;
	if (!x) {
		if (cli_parse_u32(s, &h))
			return -1;
		w = h;
	} else {
		size_t n = (size_t)(x - s);
		if (n == 0 || n >= sizeof(buf))
			return -1;
		memcpy(buf, s, n);
		buf[n] = '\0';
		if (cli_parse_u32(buf, &h) || cli_parse_u32(x + 1, &w))
			return -1;
	}
	if (h == 0 || w == 0 || h > 8192 || w > 8192)
		return -1;
	*height = h;
	*width = w;
	return 0;
}

int cli_parse_pad(const char *cmd, const char *s, uint32_t *pad)
{
	if (cli_parse_u32(s, pad) || *pad < 1 || *pad > 8192)
		return cli_usage_error(cmd, "--pad: '%s' is not a count in 1..8192", s);
	return 0;
}

int cli_parse_double(const char *s, double *out)
{
	/* strtod would skip leading space and accept "inf", "nan" and hex */
	if (!s || !(*s == '-' || *s == '+' || *s == '.' || (*s >= '0' && *s <= '9')))
		return -1;
	if (strpbrk(s, "xXnNiI"))
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	unsigned shift = 0;

	if (!s || parse_digits(s, &v, &end))
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case 'b': case 'B':
		if (end[1] != '\0')
			return -1;
		break;
	default:
		return -1;
	}
	if (shift) {
		const char *rest = end + 1;

		if (strcmp(rest, "") != 0 && strcmp(rest, "B") != 0 &&
		    strcmp(rest, "iB") != 0 && strcmp(rest, "b") != 0)
			return -1;
		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	}
	*out = v;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void cli_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*p != '\0') {
		size_t n;

		switch (*p) {
		case '"': fputs("\\\"", f); p++; continue;
		case '\\': fputs("\\\\", f); p++; continue;
		case '\b': fputs("\\b", f); p++; continue;
		case '\f': fputs("\\f", f); p++; continue;
		case '\n': fputs("\\n", f); p++; continue;
		case '\r': fputs("\\r", f); p++; continue;
		case '\t': fputs("\\t", f); p++; continue;
		default: break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
			p++;
			continue;
		}
		n = utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

const char *cli_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return buf;
	}
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

void cli_json_double(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, "%.17g", x);
	else
		fputs("null", f);
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_init(cli_progress *p, FILE *out, int enabled)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->enabled = enabled;
	p->tty = enabled && isatty(fileno(out));
	p->start = cli_now();
	p->last = p->start;
}

double cli_progress_elapsed(const cli_progress *p)
{
	return cli_now() - p->start;
}

static void progress_print(cli_progress *p, double now)
{
	double secs = now - p->start;
	double mbps = secs > 0 ? (double)p->bytes / 1e6 / secs : 0.0;
	char line[160];
	int n;

	if (p->total > 0 && p->bytes > 0 && p->bytes <= p->total)
		n = snprintf(line, sizeof(line),
			     "%llu records, %.1f of %.1f MB (%.0f%%), %.1f MB/s, %.1f s, ETA %.0f s",
			     p->samples, (double)p->bytes / 1e6, (double)p->total / 1e6,
			     100.0 * (double)p->bytes / (double)p->total, mbps, secs,
			     secs * (double)(p->total - p->bytes) / (double)p->bytes);
	else
		n = snprintf(line, sizeof(line), "%llu records, %.1f MB in, %.1f MB/s, %.1f s",
			     p->samples, (double)p->bytes / 1e6, mbps, secs);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	if (p->tty) {
		/* Pad with spaces so a shorter line covers the previous one. */
		size_t pad = p->line_len > (size_t)n ? p->line_len - (size_t)n : 0;

		fprintf(p->out, "\r%s%*s", line, (int)pad, "");
		p->line_len = (size_t)n;
	} else {
		fprintf(p->out, "%s\n", line);
	}
	fflush(p->out);
}

void cli_progress_update(cli_progress *p, unsigned long long samples,
			 unsigned long long bytes)
{
	p->samples = samples;
	p->bytes = bytes;
	if (!p->enabled)
		return;
	double now = cli_now();
	double every = p->tty ? 0.2 : 5.0;
	if (now - p->last < every)
		return;
	p->last = now;
	progress_print(p, now);
}

void cli_progress_set_total(cli_progress *p, unsigned long long total)
{
	p->total = total;
}

void cli_progress_finish(cli_progress *p)
{
	if (!p->enabled || !p->tty || p->line_len == 0)
		return;
	fprintf(p->out, "\r%*s\r", (int)p->line_len, "");
	fflush(p->out);
	p->line_len = 0;
}
