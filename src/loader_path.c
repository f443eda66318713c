/*
 * loader_path.c — how the loader reaches the shards' bytes: the dataset's
 * buffered descriptors and O_DIRECT ones, the read backend (io_uring, else
 * pread threads), and read-only mappings for epochs decoded straight from
 * the page cache; and, per epoch, which of these to use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "loader_int.h"

static int entry_of(const void *ds, uint64_t id, ib_index_entry *e)
{
	return ib_dataset_entry(ds, id, e);
}

ib_entries ib_path_entries(const ibstore_loader *l)
{
	return (ib_entries){entry_of, l->cfg.ds, l->cfg.samples};
}

/* The dataset's buffered descriptors, then O_DIRECT ones when wanted and
 * possible (auto does without them where the file system refuses). */
int ib_path_open_fds(ibstore_loader *l)
{
	ib_loader_path *p = &l->path;
	uint32_t n = l->cfg.shards;
	p->fds = malloc((n ? 2 * (size_t)n : 1) * sizeof *p->fds);
	if (!p->fds)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n; s++) {
		p->fds[s] = ib_dataset_shard_fd(l->cfg.ds, s);
		p->fds[n + s] = -1;
	}
	if (l->cfg.o.direct == 0)
		return 0;
	for (uint32_t s = 0; s < n; s++) {
		const char *path = ibstore_dataset_shard_path(l->cfg.ds, s);
		p->fds[n + s] = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (p->fds[n + s] >= 0)
			continue;
		int e = errno;
		for (uint32_t t = 0; t < s; t++)
			close(p->fds[n + t]);
		for (uint32_t t = 0; t < n; t++)
			p->fds[n + t] = -1;
		if (l->cfg.o.direct == 1)
			return ib_fail(l->errmsg, IBSTORE_EUNSUPPORTED, "%s: O_DIRECT refused: %s",
				       path, strerror(e));
		return 0;
	}
	p->have_direct = 1;
	return 0;
}

/* The backend over the descriptors (the O_DIRECT ones too when open),
 * with the read slots registered where it can: io_uring unless the
 * options say pread or mmap, and pread threads where io_uring is refused
 * (auto) or asked for. */
int ib_path_open_backend(ibstore_loader *l)
{
	const ibstore_loader_opts *o = &l->cfg.o;
	void *base = l->mem.rbuf;
	size_t len = l->mem.rbuf_len;
	ib_io_buffers bufs = {&base, &len, 1};
	unsigned nfds = l->cfg.shards * (l->path.have_direct ? 2u : 1u);
	char msg[IB_ERRMSG_LEN];
	int rc = IBSTORE_EUNSUPPORTED;
	if (o->backend != IBSTORE_BACKEND_PREAD && o->backend != IBSTORE_BACKEND_MMAP)
		rc = ib_io_uring_create(l->path.fds, nfds, o->queue_depth, &bufs, &l->path.io, msg);
	if (rc && o->backend == IBSTORE_BACKEND_URING)
		return ib_fail(l->errmsg, rc, "%s", msg);
	if (rc) /* auto: io_uring refused, so threads calling pread */
		rc = ib_io_pread_create(l->path.fds, nfds, o->queue_depth < 16 ? o->queue_depth : 16,
					&l->path.io, msg);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", msg);
	return 0;
}

/* Maps every shard read-only, once. */
static int map_shards(ibstore_loader *l)
{
	uint32_t n = l->cfg.shards;
	if (l->path.maps)
		return 0;
	l->path.maps = calloc(n ? n : 1, sizeof *l->path.maps);
	if (!l->path.maps)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n; s++) {
		size_t len = (size_t)ib_dataset_shard_size(l->cfg.ds, s);
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, ib_dataset_shard_fd(l->cfg.ds, s), 0);
		if (p == MAP_FAILED)
			return ib_fail(l->errmsg, IBSTORE_EIO, "%s: mmap: %s",
				       ibstore_dataset_shard_path(l->cfg.ds, s), strerror(errno));
		l->path.maps[s] = p;
	}
	return 0;
}

static void unmap_shards(ibstore_loader *l)
{
	for (uint32_t s = 0; l->path.maps && s < l->cfg.shards; s++)
		if (l->path.maps[s])
			munmap(l->path.maps[s], (size_t)ib_dataset_shard_size(l->cfg.ds, s));
	free(l->path.maps);
	l->path.maps = NULL;
}

/* Whether every page of every shard is in the page cache right now. */
static int all_resident(ibstore_loader *l)
{
	long page = sysconf(_SC_PAGESIZE);
	for (uint32_t s = 0; s < l->cfg.shards; s++) {
		size_t len = (size_t)ib_dataset_shard_size(l->cfg.ds, s);
		size_t pages = (len + (size_t)page - 1) / (size_t)page;
		unsigned char *vec = malloc(pages ? pages : 1);
		int ok = vec && mincore(l->path.maps[s], len, vec) == 0;
		for (size_t i = 0; ok && i < pages; i++)
			ok = vec[i] & 1;
		free(vec);
		if (!ok)
			return 0;
	}
	return 1;
}

/* Whether the whole dataset is in the page cache (0 when the shards
 * cannot be mapped to ask: reading works without the mappings). */
static int dataset_cached(ibstore_loader *l)
{
	if (map_shards(l) == 0)
		return all_resident(l);
	l->errmsg[0] = '\0';
	return 0;
}

/*
 * Chooses, per epoch: decoding from the mappings (auto, when every shard
 * is in the page cache), and otherwise buffered or O_DIRECT reads (auto:
 * O_DIRECT for large records read from disk, where it reads at the
 * device's speed; small ones gain from the page cache's readahead of
 * neighbours, and a dataset in the page cache is read from there).
 */
int ib_path_choose(ibstore_loader *l)
{
	const ibstore_loader_opts *o = &l->cfg.o;
	ib_loader_path *p = &l->path;
	p->use_map = 0;
	if (o->backend == IBSTORE_BACKEND_MMAP) {
		int rc = map_shards(l);
		if (rc)
			return rc;
		p->use_map = 1;
	} else if (o->backend == IBSTORE_BACKEND_AUTO && o->direct != 1) {
		p->use_map = dataset_cached(l);
	}
	const ibstore_info *about = l->cfg.about;
	uint64_t avg = about->samples ? about->bytes_stored / about->samples : 0;
	int large = avg >= ((uint64_t)64 << 10);
	/* a forced uring/pread backend asks the page cache here: auto's
	 * answer is already in use_map */
	int cached = o->backend != IBSTORE_BACKEND_AUTO && o->direct == -1 && large &&
		     dataset_cached(l);
	p->direct = !p->use_map && p->have_direct &&
		    (o->direct == 1 || (o->direct == -1 && large && !cached));
	l->st.backend = p->use_map ? "mmap" : p->io->name;
	l->st.direct = p->direct;
	return 0;
}

ib_req *ib_path_map_batch(ibstore_loader *l, window *w, size_t first, size_t n)
{
	uint64_t touched = 0;
	for (size_t k = first; k < first + n; k++) {
		const ib_index_entry *e = &w->recs[k].e;
		w->recs[k].src = l->path.maps[e->shard] + e->offset;
		touched += rec_len(e);
	}
	l->st.bytes_read += touched;
	ib_req *r = &w->reqs[w->nreqs++]; /* sized for the window beforehand */
	*r = (ib_req){.window = (uint32_t)(w - l->flow.win), .first_rec = (uint32_t)first,
		      .nrecs = (uint32_t)n, .buf_index = -1};
	return r;
}

void ib_path_close(ibstore_loader *l)
{
	ib_loader_path *p = &l->path;
	if (p->io)
		p->io->destroy(p->io);
	unmap_shards(l);
	for (uint32_t s = 0; p->fds && s < l->cfg.shards; s++)
		if (p->fds[l->cfg.shards + s] >= 0)
			close(p->fds[l->cfg.shards + s]);
	free(p->fds);
}
