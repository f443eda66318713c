/*
 * error.c — result-code names and the version string (the message
 * formatter every handle uses is errfmt.c).
 */
#include <stdio.h>

#include "internal.h"

IB_API const char *ibstore_strerror(int code)
{
	switch (code) {
	case IBSTORE_OK: return "success";
	case IBSTORE_EINVAL: return "invalid argument";
	case IBSTORE_ENOMEM: return "out of memory";
	case IBSTORE_EIO: return "I/O error";
	case IBSTORE_EFORMAT: return "malformed or foreign file";
	case IBSTORE_EVERSION: return "unsupported format version";
	case IBSTORE_ECORRUPT: return "checksum mismatch or corrupt data";
	case IBSTORE_ETRUNCATED: return "file truncated";
	case IBSTORE_EMISMATCH: return "does not match (another dataset or configuration)";
	case IBSTORE_ENOTFOUND: return "not found";
	case IBSTORE_EEXIST: return "already exists";
	case IBSTORE_ETOOBIG: return "too big";
	case IBSTORE_ECATALOG: return "catalog (LMDB) error";
	case IBSTORE_EUNSUPPORTED: return "not supported here";
	case IBSTORE_ESTATE: return "call not valid in this state";
	case IBSTORE_EBUFSIZE: return "buffer too small";
	default: return "unknown error";
	}
}

IB_API const char *ibstore_version(void)
{
	return IBSTORE_VERSION_STRING;
}
