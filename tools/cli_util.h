/*
 * cli_util.h — small helpers shared by the `ibstore` subcommands: strict
 * number and size parsing for options, JSON string output, human byte
 * sizes, uniform error reporting with the CLI's exit codes, and a progress
 * reporter for long-running commands.  Nothing here keeps global state.
 */
#ifndef IBSTORE_CLI_UTIL_H
#define IBSTORE_CLI_UTIL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ibstore.h"

/* Exit codes of every subcommand. */
enum {
	CLI_EXIT_OK = 0,    /* success (verify: everything sound) */
	CLI_EXIT_FAIL = 1,  /* runtime failure, or verify found problems */
	CLI_EXIT_USAGE = 2, /* wrong arguments */
};

/* ---- subcommands (one file each; argv[0] is the command's name) ---- */

int cmd_pack(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_scores(int argc, char **argv);
int cmd_bench(int argc, char **argv);

void cmd_pack_usage(FILE *f);
void cmd_info_usage(FILE *f);
void cmd_verify_usage(FILE *f);
void cmd_get_usage(FILE *f);
void cmd_export_usage(FILE *f);
void cmd_plan_usage(FILE *f);
void cmd_scores_usage(FILE *f);
void cmd_bench_usage(FILE *f);

/* ---- errors ---- */

/*
 * Prints "ibstore CMD: MESSAGE" and a hint to run "ibstore CMD --help" on
 * stderr; returns CLI_EXIT_USAGE so callers can `return cli_usage_error(..)`.
 */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints "ibstore CMD: MESSAGE" on stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Reports a getopt_long() error character ('?' for an unknown option or a
 * missing argument — getopt has already named it) with the usage hint;
 * returns CLI_EXIT_USAGE.
 */
int cli_getopt_error(const char *cmd);

/*
 * For a command that takes one operand NAME but was given `given`: reports
 * "missing NAME" or "expected exactly one NAME"; returns CLI_EXIT_USAGE.
 */
int cli_one_operand_error(const char *cmd, int given, const char *name);

/*
 * The message to show for a failed library call: `msg` (a handle's errmsg,
 * may be NULL) when it says something, else ibstore_strerror(rc).
 */
const char *cli_errmsg(const char *msg, int rc);

/* ---- parsing (all strict: the whole string must match) ---- */

/* Unsigned decimal integer: digits only, no sign, spaces or overflow. 0 or -1. */
int cli_parse_u64(const char *s, uint64_t *out);

/* Like cli_parse_u64, at most UINT32_MAX.  0 or -1. */
int cli_parse_u32(const char *s, uint32_t *out);

/* An image size: "224" (square) or "256x224" (height x width), each side in
 * 1..8192.  0, or -1. */
int cli_parse_hxw(const char *s, uint32_t *height, uint32_t *width);

/* --pad's value (the image stage's RandomCrop padding), 1..8192: 0, or a
 * usage error printed for command `cmd` and its exit status. */
int cli_parse_pad(const char *cmd, const char *s, uint32_t *pad);

/*
 * Finite decimal number as strtod reads it ("0.5", "1e-3", ".25"): no
 * leading space, nothing after it, no inf/nan, no overflow.  0 or -1.
 */
int cli_parse_double(const char *s, double *out);

/*
 * Byte size: a decimal integer with an optional binary suffix K, M, G or T
 * (any case, optionally followed by "B" or "iB"; 1K = 1024), e.g. "256M",
 * "4096", "1GiB".  0 or -1 (malformed or overflow).
 */
int cli_parse_size(const char *s, uint64_t *out);

/*
 * The pruning options that `plan` and `bench` share: --epochs, --ratio,
 * --delta, --seed, --mode and --policy.  A command puts CLI_PRUNE_LONGOPTS
 * in its getopt_long() table (its own option codes stay below
 * CLI_OPT_PRUNE_FIRST) and hands the codes it does not know to
 * cli_parse_prune_opt().
 */
enum {
	CLI_OPT_PRUNE_FIRST = 1000,
	CLI_OPT_EPOCHS = CLI_OPT_PRUNE_FIRST,
	CLI_OPT_RATIO,
	CLI_OPT_DELTA,
	CLI_OPT_SEED,
	CLI_OPT_MODE,
	CLI_OPT_POLICY,
};

#define CLI_PRUNE_LONGOPTS                                                                 \
	{"epochs", required_argument, NULL, CLI_OPT_EPOCHS},                               \
	{"ratio", required_argument, NULL, CLI_OPT_RATIO},                                 \
	{"delta", required_argument, NULL, CLI_OPT_DELTA},                                 \
	{"seed", required_argument, NULL, CLI_OPT_SEED},                                   \
	{"mode", required_argument, NULL, CLI_OPT_MODE},                                   \
	{"policy", required_argument, NULL, CLI_OPT_POLICY}

/*
 * Parses the value of pruning option `opt` into *p: 0, CLI_EXIT_USAGE after
 * a message naming `cmd`, or -1 when `opt` is not a pruning option.
 */
int cli_parse_prune_opt(const char *cmd, int opt, const char *arg, ibstore_prune_opts *p);

/* ---- datasets ---- */

/*
 * Opens the dataset at `path` and, when `info` is not NULL, reads its
 * information.  0, or CLI_EXIT_FAIL after "ibstore CMD: MESSAGE" (*ds may
 * then be set: ibstore_dataset_close() it as usual).
 */
int cli_open_dataset(const char *cmd, const char *path, ibstore_dataset **ds,
		     ibstore_info *info);

/* ---- output ---- */

/* Writes all n bytes to fd (write(2) loop, retried on EINTR).  0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t n);


/*
 * Writes `s` as a JSON string literal (with the quotes), or `null` when s
 * is NULL.  Control characters are escaped; bytes that are not valid UTF-8
 * become U+FFFD so the output is always valid JSON.
 */
void cli_json_string(FILE *f, const char *s);

/*
 * Formats `n` bytes for people ("812 B", "44.9 MiB") into buf; returns buf.
 * A buffer of 32 bytes is always enough.
 */
const char *cli_human_bytes(uint64_t n, char *buf, size_t len);

/*
 * Writes `x` as a JSON number with %.17g (round-trips a double), or `null`
 * when it is NaN or infinite (JSON has no such numbers).
 */
void cli_json_double(FILE *f, double x);

/* Seconds on a monotonic clock, for durations. */
double cli_now(void);

/* ---- progress ---- */

/*
 * Progress of a long command on stderr.  On a terminal one line is
 * rewritten in place at most ~5 times per second; otherwise a plain line
 * is printed every ~5 seconds; nothing at all when disabled.
 */
typedef struct cli_progress {
	FILE *out;
	int enabled;
	int tty;
	double start;       /* cli_now() at init */
	double last;        /* last time a line was printed */
	size_t line_len;    /* length of the in-place line on a terminal */
	unsigned long long samples;
	unsigned long long bytes;
	unsigned long long total; /* bytes expected in all, for an ETA; 0: unknown */
} cli_progress;

/* Starts the clock; `enabled` = 0 silences everything (--quiet). */
void cli_progress_init(cli_progress *p, FILE *out, int enabled);

/* Records the latest counters and prints a line when one is due. */
void cli_progress_update(cli_progress *p, unsigned long long samples,
			 unsigned long long bytes);

/* Sets the number of bytes expected in all: lines then show an ETA. */
void cli_progress_set_total(cli_progress *p, unsigned long long total);

/* Clears the in-place line (terminal) so a summary can follow. */
void cli_progress_finish(cli_progress *p);

/* Seconds since cli_progress_init(). */
double cli_progress_elapsed(const cli_progress *p);

#endif
