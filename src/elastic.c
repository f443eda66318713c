/*
 * elastic.c — one logical run state for a data-parallel job, whatever its
 * number of ranks (ibstore.h, "Elastic resume"; docs/PRUNING.md).
 *
 * A job's state is the set of per-rank files under one base path.  Opening
 * rank r of world W finds the newest complete set (every rank's file of one
 * generation and world), and either resumes this rank's own file (same
 * world, every file at the same point) or builds the rank's file of the
 * next generation from the set: scores merged by ownership, the plan, and
 * the first plan position every old rank has consumed.  No rank talks to
 * another: each reads the same files and computes the same state.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "slice.h"
#include "state_int.h"

IB_API int ibstore_run_path(const char *base, uint32_t gen, uint32_t rank, uint32_t world,
			    char *buf, size_t cap)
{
	if (!base || !*base || !buf || world == 0 || rank >= world)
		return IBSTORE_EINVAL;
	char g[16] = "", r[48] = "";
	if (gen)
		snprintf(g, sizeof g, ".g%" PRIu32, gen);
	if (world > 1)
		snprintf(r, sizeof r, ".rank%" PRIu32 "-of-%" PRIu32, rank, world);
	int n = snprintf(buf, cap, "%s%s%s", base, g, r);
	return n < 0 || (size_t)n >= cap ? IBSTORE_ETOOBIG : 0;
}

/* One file of the job: its generation, rank and world, from its name. */
typedef struct member {
	uint32_t gen, rank, world;
} member;

/* The set chosen to resume from: its files' snapshots, in rank order. */
typedef struct jobset {
	uint32_t gen, world;
	ib_run_snapshot *snap;
	char **paths;
} jobset;

static void jobset_free(jobset *j)
{
	for (uint32_t i = 0; j->snap && i < j->world; i++)
		ib_run_snapshot_free(&j->snap[i]);
	for (uint32_t i = 0; j->paths && i < j->world; i++)
		free(j->paths[i]);
	free(j->snap);
	free(j->paths);
	memset(j, 0, sizeof *j);
}

static int parse_u32(const char **p, uint32_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		x = x * 10 + (uint64_t)(*s++ - '0');
		if (x > UINT32_MAX)
			return -1;
	}
	*v = (uint32_t)x;
	*p = s;
	return 0;
}

/* Parses the part of a file name after the base's name; 0 when it names a
 * member of the job.  The name must be exactly what ibstore_run_path
 * writes (no leading zeros, nothing after), so "<base>.tmp-..." is not. */
static int parse_member(const char *base, const char *suffix, member *m)
{
	const char *p = suffix;
	*m = (member){0, 0, 1};
	if (!strncmp(p, ".g", 2)) {
		p += 2;
		if (parse_u32(&p, &m->gen) || m->gen == 0)
			return -1;
	}
	if (!strncmp(p, ".rank", 5)) {
		p += 5;
		if (parse_u32(&p, &m->rank) || strncmp(p, "-of-", 4))
			return -1;
		p += 4;
		if (parse_u32(&p, &m->world) || m->world < 2 || m->rank >= m->world)
			return -1;
	}
	if (*p)
		return -1;
	char want[4096], got[4096];
	if (ibstore_run_path(base, m->gen, m->rank, m->world, want, sizeof want) ||
	    snprintf(got, sizeof got, "%s%s", base, suffix) >= (int)sizeof got)
		return -1;
	return strcmp(want, got) ? -1 : 0;
}

/* Every member file next to `base`. */
static int scan(const char *base, member **out, size_t *n, char *err)
{
	char *d1 = strdup(base), *d2 = strdup(base);
	member *m = NULL;
	size_t cap = 0, k = 0;
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (!d1 || !d2) {
		rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	const char *dir = dirname(d1), *name = basename(d2);
	size_t nl = strlen(name);
	DIR *dp = opendir(dir);
	if (!dp) {
		if (errno != ENOENT)
			rc = ib_fail(err, IBSTORE_EIO, "%s: %s", dir, strerror(errno));
		goto out; /* no directory: no files, a new run */
	}
	struct dirent *e;
	while ((e = readdir(dp))) {
		member x;
		if (strncmp(e->d_name, name, nl) || parse_member(name, e->d_name + nl, &x))
			continue;
		if (k == cap) {
			cap = cap ? 2 * cap : 16;
			member *nm = realloc(m, cap * sizeof *nm);
			if (!nm) {
				rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
				break;
			}
			m = nm;
		}
		m[k++] = x;
	}
	closedir(dp);
out:
	free(d1);
	free(d2);
	if (rc)
		free(m);
	else {
		*out = m;
		*n = k;
	}
	return rc;
}

/* 1 when set (gen, world) is preferred to (g2, w2): the newer generation,
 * the smaller world on a tie. */
static int preferred(uint32_t gen, uint32_t world, uint32_t g2, uint32_t w2)
{
	return gen > g2 || (gen == g2 && world < w2);
}

/* The best set whose names are all there and that is preferred to
 * (below_gen, below_world) when `bounded`.  1 when found. */
static int choose(const member *m, size_t n, int bounded, uint32_t below_gen,
		  uint32_t below_world, uint32_t *gen, uint32_t *world)
{
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		if (bounded && !preferred(below_gen, below_world, m[i].gen, m[i].world))
			continue;
		if (found && !preferred(m[i].gen, m[i].world, *gen, *world))
			continue;
		/* complete when ranks 0..world-1 all occur (names are unique) */
		uint32_t have = 0;
		for (size_t j = 0; j < n; j++)
			have += m[j].gen == m[i].gen && m[j].world == m[i].world;
		if (have == m[i].world) {
			*gen = m[i].gen;
			*world = m[i].world;
			found = 1;
		}
	}
	return found;
}

/* How far one file's rank got, as (epochs done, in epoch, plan position);
 * an in-epoch file at cursor c has consumed positions [start, start+c·B·W)
 * with every other rank at c, all of the plan once its batches are done. */
static void progress_key(const ib_run_snapshot *s, uint64_t key[3])
{
	key[0] = s->prog.epochs_done;
	key[1] = s->prog.in_epoch ? 1 : 0;
	key[2] = 0;
	if (!s->prog.in_epoch)
		return;
	const ib_run_config *c = &s->cfg;
	uint64_t len = s->plan->len, rest = len - s->seg.start;
	uint64_t slice = ib_slice_len(rest, c->world, (ibstore_slice_mode)c->slice);
	uint64_t batches = ib_batch_count(slice, c->batch_size, (int)c->drop_last);
	if (s->prog.cursor >= batches) {
		key[2] = len;
		return;
	}
	uint64_t done = s->prog.cursor * c->batch_size * c->world;
	key[2] = done >= rest ? len : s->seg.start + done;
}

static int key_cmp(const uint64_t a[3], const uint64_t b[3])
{
	for (int i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static int read_set(const char *base, uint32_t gen, uint32_t world, jobset *j, char *err)
{
	j->gen = gen;
	j->world = world;
	j->snap = calloc(world, sizeof *j->snap);
	j->paths = calloc(world, sizeof *j->paths);
	if (!j->snap || !j->paths)
		return ib_fail(err, IBSTORE_ENOMEM, "out of memory");
	size_t cap = strlen(base) + 64;
	for (uint32_t r = 0; r < world; r++) {
		if (!(j->paths[r] = malloc(cap)))
			return ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		ibstore_run_path(base, gen, r, world, j->paths[r], cap);
		int rc = ib_run_snapshot_read(j->paths[r], &j->snap[r], err);
		if (rc)
			return rc;
		const ib_run_snapshot *s = &j->snap[r];
		if (gen == 0 && world == 1 && s->cfg.world != 1)
			return ib_fail(err, IBSTORE_ENOTFOUND, "%s is a file of a run of %" PRIu32
				       " ranks, not a job's base", j->paths[r], s->cfg.world);
		if (s->cfg.rank != r || s->cfg.world != world || s->seg.gen != gen)
			return ib_fail(err, IBSTORE_EFORMAT,
				       "%s holds rank %" PRIu32 " of %" PRIu32 " of generation %" PRIu32
				       ", not what its name says",
				       j->paths[r], s->cfg.rank, s->cfg.world, s->seg.gen);
		if (r && s->seg.lineage != j->snap[0].seg.lineage)
			return ib_fail(err, IBSTORE_ENOTFOUND,
				       "%s and %s come from different resumes (one was cut short): "
				       "not one set", j->paths[0], j->paths[r]);
		if (r && ib_run_config_compare(err, &j->snap[0].cfg, &s->cfg, 0))
			return ib_fail(err, IBSTORE_EFORMAT, "%s and %s are not of one run", j->paths[0],
				       j->paths[r]);
	}
	return 0;
}

/* The rank whose file is least far: the set's resume point. */
static uint32_t least(const jobset *j, int *all_equal)
{
	uint32_t m = 0;
	uint64_t km[3], k[3];
	progress_key(&j->snap[0], km);
	*all_equal = 1;
	for (uint32_t r = 1; r < j->world; r++) {
		progress_key(&j->snap[r], k);
		int c = key_cmp(k, km);
		if (c)
			*all_equal = 0;
		if (c < 0) {
			m = r;
			memcpy(km, k, sizeof k);
		}
	}
	return m;
}

/* The lineage the files built from set j at resume point `key` share: every
 * new rank computes the same from the same set, and a member left over from
 * an earlier, unfinished resume (another point) differs, so a set mixing
 * the two is not taken for complete. */
static uint32_t lineage(const jobset *j, const uint64_t key[3])
{
	uint64_t v[5] = {j->gen, j->world, key[0], key[1], key[2]};
	uint64_t h = ib_fnv1a(0xcbf29ce484222325ull, v, sizeof v);
	uint32_t l = (uint32_t)(h ^ (h >> 32));
	return l ? l : 1;
}

/* 1 when file f is of m's epoch: in it, or just past its end (its plan
 * record is still that epoch's). */
static int same_epoch(const ib_run_snapshot *f, const ib_run_snapshot *m)
{
	if (f->prog.epoch != m->prog.epoch)
		return 0;
	if (f->prog.in_epoch)
		return f->prog.epochs_done == m->prog.epochs_done;
	return f->prog.epochs_done == m->prog.epochs_done + 1;
}

/*
 * The set's logical state as rank `rank` of `world` of generation gen + 1:
 * the state of the whole job at the resume point P (the least far file's
 * point).  Its progress, plan and epoch statistics are the least far
 * file's; a sample at plan position p < P has the score of the file of the
 * rank that trained it (old rank r owns positions start + r, start + r + W,
 * ...), every other sample the least far file's, which holds them as of P
 * (with an exchange per batch) or as of the epoch's start (with one per
 * epoch).  Losses some ranks reported past P (a partial step) are dropped:
 * those batches are trained again, and every sample counts once in the
 * epoch.  Files past the least far one's epoch contribute nothing.
 */
static int merge(jobset *j, uint32_t rank, uint32_t world, ib_run_snapshot *out, char *err)
{
	int eq;
	uint32_t mr = least(j, &eq);
	ib_run_snapshot *m = &j->snap[mr];
	uint64_t key[3];
	progress_key(m, key);
	for (uint32_t r = 0; m->prog.in_epoch && r < j->world; r++) {
		const ib_run_snapshot *f = &j->snap[r];
		if (r == mr || !same_epoch(f, m))
			continue;
		if (f->prog.in_epoch &&
		    (f->plan->len != m->plan->len || f->seg.start != m->seg.start ||
		     memcmp(f->plan->ids, m->plan->ids, m->plan->len * sizeof *m->plan->ids)))
			return ib_fail(err, IBSTORE_EFORMAT,
				       "%s and %s hold different plans for epoch %" PRIu32,
				       j->paths[mr], j->paths[r], m->prog.epoch);
		/* before the resume point: the owner's; past it, m's (as of then) */
		const ibstore_plan *p = m->plan;
		for (uint64_t pos = m->seg.start + r; pos < key[2]; pos += j->world)
			m->scores[p->ids[pos]] = f->scores[p->ids[pos]];
	}
	*out = *m; /* takes m's scores, plan and statistics */
	memset(m, 0, sizeof *m);
	out->cfg.rank = rank;
	out->cfg.world = world;
	out->prog.cursor = 0;
	out->seg = (ib_run_segment){j->gen + 1, lineage(j, key), out->prog.in_epoch ? key[2] : 0};
	return 0;
}

/* The newest complete set of the job at `base`, read: 1 found, 0 none, or
 * a negative code. */
static int find_set(const char *base, jobset *j, char *err)
{
	member *m;
	size_t n;
	uint32_t gen = 0, world = 0;
	int rc = scan(base, &m, &n, err), bounded = 0;
	if (rc)
		return rc;
	/* the best set whose files all hold a state: a member whose creation
	 * was cut short (empty) leaves its set incomplete */
	while (choose(m, n, bounded, gen, world, &gen, &world)) {
		rc = read_set(base, gen, world, j, err);
		if (rc != IBSTORE_ENOTFOUND)
			break;
		jobset_free(j);
		bounded = 1;
	}
	free(m);
	if (rc && rc != IBSTORE_ENOTFOUND) {
		jobset_free(j);
		return rc;
	}
	return j->snap ? 1 : 0;
}

/* fsync of the directory holding `path`. */
static int sync_parent(const char *path, char *err)
{
	char *d = strdup(path);
	if (!d)
		return ib_fail(err, IBSTORE_ENOMEM, "out of memory");
	int e = ib_fsync_dir(dirname(d));
	free(d);
	return e ? ib_fail(err, IBSTORE_EIO, "fsync of %s's directory: %s", path, strerror(-e)) : 0;
}

/* Writes `s` at `path` through a temporary name and a rename, so a process
 * killed meanwhile leaves no half-written member of the job. */
static int publish(const char *path, const ib_run_snapshot *s, char *err)
{
	size_t cap = strlen(path) + 32;
	char *tmp = malloc(cap);
	if (!tmp)
		return ib_fail(err, IBSTORE_ENOMEM, "out of memory");
	snprintf(tmp, cap, "%s.tmp-%ld", path, (long)getpid());
	unlink(tmp); /* a leftover of a killed process that had our pid */
	int rc = ib_run_snapshot_write(tmp, s, err);
	if (!rc && rename(tmp, path)) {
		rc = ib_fail(err, IBSTORE_EIO, "rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
	}
	if (!rc)
		rc = sync_parent(path, err);
	free(tmp);
	return rc;
}

/* A handle that carries only a message (as ibstore_run_open leaves one on
 * failure), for the caller's ibstore_run_errmsg. */
static int fail_handle(ibstore_run **out, int rc, const char *err)
{
	ibstore_run_open(NULL, NULL, out);
	if (*out)
		ib_fail((*out)->errmsg, rc, "%s", err);
	return rc;
}

/* This rank's file: the path it opens, after building it from the newest
 * complete set when the world changed or the set's files stand apart. */
static int elastic_path(const char *base, const ibstore_run_opts *o, char *path, size_t cap,
			char *err)
{
	jobset j = {0};
	ib_run_snapshot merged = {0};
	int found = find_set(base, &j, err), rc = 0, eq;
	if (found <= 0) { /* a new job, or no complete set of any world yet */
		ibstore_run_path(base, 0, o->rank, o->world, path, cap);
		return found;
	}
	ib_run_config want;
	ib_run_opts_to_config(o, &want);
	if ((rc = ib_run_config_compare(err, &j.snap[0].cfg, &want, 0)))
		goto out;
	least(&j, &eq);
	if (j.world == o->world && eq) { /* the same world, every rank at one point */
		ibstore_run_path(base, j.gen, o->rank, o->world, path, cap);
		goto out;
	}
	ibstore_run_path(base, j.gen + 1, o->rank, o->world, path, cap);
	if (!(rc = merge(&j, o->rank, o->world, &merged, err)))
		rc = publish(path, &merged, err);
out:
	jobset_free(&j);
	ib_run_snapshot_free(&merged);
	return rc;
}

IB_API int ibstore_run_open_elastic(const char *base, const ibstore_run_opts *opts,
				    ibstore_run **out)
{
	char err[IB_ERRMSG_LEN] = "";
	if (!out)
		return IBSTORE_EINVAL;
	*out = NULL;
	if (!base || !*base)
		return fail_handle(out, IBSTORE_EINVAL, "no run state base path given");
	if (!opts)
		return fail_handle(out, IBSTORE_EINVAL,
				   "an elastic run needs its options (rank and world at least)");
	ibstore_run_opts o;
	int rc = ib_run_opts_adopt(&o, opts, err, sizeof err);
	if (rc)
		return fail_handle(out, IBSTORE_EINVAL, err);
	if (o.world == 0 || o.rank >= o.world)
		{
		snprintf(err, sizeof err, "rank %" PRIu32 " is not below world %" PRIu32, o.rank, o.world);
		return fail_handle(out, IBSTORE_EINVAL, err);
	}
	size_t cap = strlen(base) + 64;
	char *path = malloc(cap);
	if (!path)
		return IBSTORE_ENOMEM;
	rc = elastic_path(base, &o, path, cap, err);
	rc = rc ? fail_handle(out, rc, err) : ibstore_run_open(path, &o, out);
	free(path);
	return rc;
}

IB_API int ibstore_run_merge(const char *base, const char *out_path, uint32_t *world,
			     uint32_t *gen, char *msg, size_t msglen)
{
	char err[IB_ERRMSG_LEN] = "";
	jobset j = {0};
	ib_run_snapshot merged = {0};
	int rc;
	if (!base || !*base || !out_path || !*out_path) {
		rc = ib_fail(err, IBSTORE_EINVAL, "no job base path or output path");
		goto out;
	}
	int found = find_set(base, &j, err);
	if (found <= 0) {
		rc = found ? found
			   : ib_fail(err, IBSTORE_ENOTFOUND, "%s: no run state of any world", base);
		goto out;
	}
	if (world)
		*world = j.world;
	if (gen)
		*gen = j.gen;
	if ((rc = merge(&j, 0, 1, &merged, err)))
		goto out;
	merged.seg.gen = j.gen; /* the job as it stands, not a resume of it */
	if ((rc = ib_run_snapshot_write(out_path, &merged, err)))
		goto out;
out:
	if (rc)
		ib_failn(msg, msglen, 0, "%s", err);
	jobset_free(&j);
	ib_run_snapshot_free(&merged);
	return rc;
}
