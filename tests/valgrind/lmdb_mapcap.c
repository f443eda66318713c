/*
 * lmdb_mapcap.c — an LD_PRELOAD shim for running the tests under valgrind.
 *
 * The library maps its LMDB files (the writer's catalog, every run state)
 * with a 64 GiB map size, and valgrind's memcheck cannot map that much
 * address space (mmap fails, LMDB reports ENOMEM).  This shim caps
 * mdb_env_set_mapsize() at IBSTORE_MAPCAP_MB (default 1024) MiB, which the
 * tests' small datasets and runs never come near.  Test-only: the library
 * is unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <lmdb.h>
#include <stdlib.h>

int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	static int (*real)(MDB_env *, size_t);
	if (!real)
		real = (int (*)(MDB_env *, size_t))dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
	const char *mb = getenv("IBSTORE_MAPCAP_MB");
	size_t cap = (size_t)(mb && *mb ? strtoull(mb, NULL, 10) : 1024) << 20;
	return real(env, size < cap ? size : cap);
}
