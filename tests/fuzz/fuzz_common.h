/*
 * fuzz_common.h — helpers shared by the libFuzzer targets of tests/fuzz:
 * one scratch directory per fuzzing process (under /dev/shm when present,
 * removed at exit), small file helpers, and the seed-writing mode.
 *
 * Seed mode: when IBSTORE_FUZZ_WRITE_SEEDS=DIR is set, a target that builds
 * structured inputs (catalog, shards, run state, record) writes its seed
 * files into DIR from LLVMFuzzerInitialize and exits; the committed corpora
 * in tests/fuzz/corpus/<target>/ were made that way.
 */
#ifndef IBSTORE_FUZZ_COMMON_H
#define IBSTORE_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char fz_root[256];

static inline int fz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes a tree (no error if absent). */
static inline void fz_rmtree(const char *path)
{
	nftw(path, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fz_cleanup(void)
{
	if (fz_root[0])
		fz_rmtree(fz_root);
}

/* The process's scratch directory, created on first use. */
static inline const char *fz_dir(void)
{
	if (!fz_root[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(fz_root, sizeof fz_root, "%s/ibfuzz-XXXXXX", base);
		if (!mkdtemp(fz_root)) {
			perror("mkdtemp");
			abort();
		}
		atexit(fz_cleanup);
	}
	return fz_root;
}

/* fz_path(buf, "x/y") = "<scratch>/x/y" */
static inline char *fz_path(char *buf, size_t cap, const char *rel)
{
	snprintf(buf, cap, "%s/%s", fz_dir(), rel);
	return buf;
}

/* Writes a whole file; 0 or -1. */
static inline int fz_write_try(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(fd, b, n);
		if (k <= 0) {
			close(fd);
			return -1;
		}
		b += k;
		n -= (size_t)k;
	}
	close(fd);
	return 0;
}

/* Writes a file the target needs; aborts when it cannot. */
static inline void fz_write(const char *path, const void *p, size_t n)
{
	if (fz_write_try(path, p, n)) {
		perror(path);
		abort();
	}
}

/* Reads a whole file; aborts when it cannot (only used on our own files). */
static inline uint8_t *fz_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		abort();
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
	if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* Seed mode: the directory to write seeds into, or NULL. */
static inline const char *fz_seed_dir(void)
{
	const char *d = getenv("IBSTORE_FUZZ_WRITE_SEEDS");
	if (d && *d) {
		mkdir(d, 0755);
		return d;
	}
	return NULL;
}

/*
 * Defines LLVMFuzzerInitialize for a target that writes its own seeds:
 * with IBSTORE_FUZZ_WRITE_SEEDS=DIR (tests/fuzz/make-seeds) it calls
 * write_seeds(DIR) and exits; otherwise fuzzing goes on.
 */
#define FZ_SEEDS_FROM(write_seeds)                                                       \
	int LLVMFuzzerInitialize(int *argc, char ***argv);                               \
	int LLVMFuzzerInitialize(int *argc, char ***argv)                                \
	{                                                                                \
		(void)argc;                                                              \
		(void)argv;                                                              \
		const char *dir_ = fz_seed_dir();                                        \
		if (dir_) {                                                              \
			write_seeds(dir_);                                               \
			exit(0);                                                         \
		}                                                                        \
		return 0;                                                                \
	}

static inline void fz_write_seed(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fz_write(path, p, n);
}

/* A little-endian reader over the fuzz input. */
typedef struct fz_in {
	const uint8_t *p;
	size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fz_u16(fz_in *in)
{
	uint16_t lo = fz_u8(in);
	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

/* Takes up to n bytes; *got says how many. */
static inline const uint8_t *fz_take(fz_in *in, size_t n, size_t *got)
{
	if (n > in->n)
		n = in->n;
	const uint8_t *p = in->p;
	in->p += n;
	in->n -= n;
	*got = n;
	return p;
}

#endif
