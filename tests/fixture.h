/*
 * fixture.h — what the C unit tests share: a temporary directory and its
 * removal, files written and read whole (failing the test when they cannot
 * be), and a small dataset built from a test's own sample function.
 * Include it after <cmocka.h>.  With "import.h" included first it also
 * gives the importer tests their writer and import context.
 */
#ifndef IBSTORE_TEST_FIXTURE_H
#define IBSTORE_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "ibstore.h"

/* Makes "/tmp/PREFIX-XXXXXX" into dir (cap bytes): 0, or -1. */
int fx_mkdtemp(char *dir, size_t cap, const char *prefix);

/* Removes a directory tree (nothing follows links): 0, or -1. */
int fx_rmtree(const char *dir);

/* "DIR/NAME" in one of 8 rotating buffers: good until 8 more calls. */
const char *fx_path(const char *dir, const char *name);

/* Writes a whole file (created or truncated). */
void fx_write_file(const char *path, const void *data, size_t len);

/* Reads a whole file into a new buffer (free() it; not NULL when empty). */
uint8_t *fx_read_file(const char *path, size_t *len);

/* A dataset of a test's own samples. */
typedef struct fx_dataset {
	uint64_t samples;
	size_t max_len;                             /* largest payload */
	size_t (*payload)(uint64_t i, uint8_t *buf); /* sample i into buf; its length */
	int32_t (*label)(uint64_t i);               /* NULL: IBSTORE_NO_LABEL */
	void (*key)(uint64_t i, char *buf, size_t cap); /* NULL: no keys */
	const ibstore_writer_opts *opts;            /* NULL: the defaults, no fsync */
} fx_dataset;

/* Creates a writer at path and adds the samples (ids checked): call
 * fx_publish() on it, after what else the test records. */
ibstore_writer *fx_fill(const char *path, const fx_dataset *d);

/* Publishes (the writer's message on failure) and frees the writer. */
void fx_publish(ibstore_writer *w);

/* fx_fill() then fx_publish(). */
void fx_make_dataset(const char *path, const fx_dataset *d);

#ifdef IBSTORE_IMPORT_H
#include <stdio.h>
#include <stdlib.h>

/* The start of the importer tests' fixtures: a temporary directory, an
 * unpublished writer at DIR/out.ibs (no fsync) and its import context. */
typedef struct fx_import {
	char dir[64];
	char out[128];
	char err[512];
	ibstore_writer *w;
	import_ctx c;
} fx_import;

static inline int fx_import_setup(fx_import *f, const char *prefix, int jobs)
{
	if (fx_mkdtemp(f->dir, sizeof f->dir, prefix))
		return -1;
	snprintf(f->out, sizeof f->out, "%s/out.ibs", f->dir);
	ibstore_writer_opts opts;
	ibstore_writer_opts_init(&opts);
	opts.fsync = 0;
	opts.jobs = jobs;
	if (ibstore_writer_create(f->out, &opts, &f->w)) {
		ibstore_writer_free(f->w);
		fx_rmtree(f->dir);
		return -1;
	}
	f->c.w = f->w;
	f->c.err = f->err;
	f->c.errlen = sizeof f->err;
	return 0;
}

/* The teardown of a calloc()ed test fixture whose first member is its
 * fx_import: frees the writer, removes the directory, frees the fixture. */
static inline int fx_import_teardown(void **state)
{
	fx_import *f = *state;
	ibstore_writer_free(f->w);
	int rc = fx_rmtree(f->dir);
	free(f);
	return rc;
}
#endif

#endif
