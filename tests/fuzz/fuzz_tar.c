/*
 * fuzz_tar.c — the tar (WebDataset) importer: ustar, GNU and pax headers.
 * Input: flags (bit 0: two archives, cut at the middle on a 512-byte
 * boundary; bit 1: payload extensions "bin,txt"; bit 2: label extension
 * "lbl"; bit 3: publish a successful import), then the archive bytes.
 */
#include "import_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	int flags = fz_u8(&in);
	int files = (flags & 1) ? 2 : 1;
	size_t part = files == 2 ? (in.n / 2) & ~(size_t)511 : in.n;
	char paths[2][512];
	const char *pp[2];
	imp_files(&in, files, part, "shard%d.tar", 0, paths, pp);
	import_tar_opts o = {
		.payload = (flags & 2) ? "bin,txt" : NULL,
		.label_ext = (flags & 4) ? "lbl" : NULL,
	};
	import_ctx c;
	imp_begin(&c);
	int rc = import_tar(&c, pp, files, &o);
	imp_end(&c, rc, flags & 8);
	return 0;
}
