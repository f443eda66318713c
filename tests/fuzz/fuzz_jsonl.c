/*
 * fuzz_jsonl.c — the JSON Lines importer.
 * Input: flags (bit 0: field "text", bit 1: label field "label", bit 2:
 * skip bad lines, bit 3: line keys, bit 4: split into two files at the
 * middle, bit 5: publish a successful import), then the file's bytes.
 */
#include "import_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	int flags = fz_u8(&in);
	int files = (flags & 16) ? 2 : 1;
	size_t part = in.n / (size_t)files;
	char paths[2][512];
	const char *pp[2];
	imp_files(&in, files, part, "part%d.jsonl", 0, paths, pp);
	import_jsonl_opts o = {
		.field = (flags & 1) ? "text" : NULL,
		.label_field = (flags & 2) ? "label" : NULL,
		.skip_bad = !!(flags & 4),
		.line_keys = !!(flags & 8),
	};
	import_ctx c;
	imp_begin(&c);
	int rc = import_jsonl(&c, pp, files, &o);
	imp_end(&c, rc, flags & 32);
	return 0;
}
