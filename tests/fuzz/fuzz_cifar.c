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
	for (int i = 0; i < files; i++) {
		char rel[32];
		size_t got;
		snprintf(rel, sizeof rel, "data_batch_%d.bin", i + 1);
		fz_path(paths[i], sizeof paths[i], rel);
		const uint8_t *p = fz_take(&in, i + 1 == files ? in.n : part, &got);
		fz_write(paths[i], p, got);
		pp[i] = paths[i];
	}
	import_ctx c;
	imp_begin(&c);
	int rc = import_cifar(&c, pp, files, variant);
	imp_end(&c, rc, publish);
	return 0;
}
