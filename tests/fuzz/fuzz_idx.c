/*
 * fuzz_idx.c — the IDX importer (MNIST, Fashion-MNIST).
 * Input: flags (bit 0: gzip the images file, bit 1: gzip the labels file,
 * bit 2: publish a successful import and verify it), images file length
 * (u16 LE), images file, labels file (the rest).
 */
#include "import_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	int flags = fz_u8(&in);
	size_t ilen, llen;
	const uint8_t *img = fz_take(&in, fz_u16(&in), &ilen);
	const uint8_t *lab = fz_take(&in, in.n, &llen);
	char ipath[512], lpath[512];
	fz_path(ipath, sizeof ipath, "images");
	fz_path(lpath, sizeof lpath, "labels");
	imp_file(ipath, img, ilen, flags & 1);
	imp_file(lpath, lab, llen, flags & 2);
	import_ctx c;
	imp_begin(&c);
	int rc = import_idx(&c, ipath, lpath);
	imp_end(&c, rc, flags & 4);
	return 0;
}
