/*
 * fuzz_cifar.c — the CIFAR binary-batch importer.
 * Input: variant (byte mod 3: detect, 10, 100), number of files (byte mod 3
 * + 1; bit 7: publish a successful import), then the batch files' bytes,
 * cut into that many equal parts.
 */
#include "import_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	static const int variants[3] = {0, 10, 100};
	int variant = variants[fz_u8(&in) % 3];
	int nb = fz_u8(&in);
	int files = nb % 3 + 1, publish = nb & 0x80;
	size_t part = in.n / (size_t)files;
	char paths[3][512];
	const char *pp[3];
	imp_files(&in, files, part, "data_batch_%d.bin", 1, paths, pp);
	import_ctx c;
	imp_begin(&c);
	int rc = import_cifar(&c, pp, files, variant);
	imp_end(&c, rc, publish);
	return 0;
}
