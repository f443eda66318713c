/*
 * fuzz_folder.c — the image-folder importer.  The input is a tiny archive
 * unpacked into a fresh directory: flags (bit 0: publish a successful
 * import), then entries of name length (1 byte), name, data length (u16
 * LE), data.  A name is a relative path ("cat/001.jpg"); bytes outside
 * [A-Za-z0-9._-/] become '_', empty and ".." components are dropped, a
 * name ending in '/' is a directory, and at most 64 entries are made.
 */
#include "import_common.h"

/* mkdir -p of the directories above `path` (inside the scratch dir). */
static void make_parents(char *path, size_t root)
{
	for (char *s = path + root + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(path, 0755);
			*s = '/';
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	int flags = fz_u8(&in);
	char root[512];
	fz_path(root, sizeof root, "tree");
	fz_rmtree(root);
	mkdir(root, 0755);
	size_t rlen = strlen(root);
	for (int e = 0; e < 64 && in.n; e++) {
		size_t nlen, dlen;
		const uint8_t *name = fz_take(&in, fz_u8(&in), &nlen);
		const uint8_t *body = fz_take(&in, fz_u16(&in), &dlen);
		char rel[300] = "", comp[300];
		size_t rl = 0, cl = 0;
		int dir = nlen && name[nlen - 1] == '/';
		for (size_t i = 0; i <= nlen; i++) {
			char ch = i < nlen ? (char)name[i] : '/';
			if (ch == '/') {
				comp[cl] = '\0';
				if (cl && strcmp(comp, "..") && strcmp(comp, ".")) {
					rl += (size_t)snprintf(rel + rl, sizeof rel - rl, "%s%s",
							       rl ? "/" : "", comp);
				}
				cl = 0;
				continue;
			}
			int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				 (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
			comp[cl++] = ok ? ch : '_';
		}
		if (!rl)
			continue;
		char path[900];
		snprintf(path, sizeof path, "%s/%s", root, rel);
		make_parents(path, rlen);
		if (dir) {
			mkdir(path, 0755);
			continue;
		}
		fz_write_try(path, body, dlen); /* a directory or a file in the way: skipped */
	}
	import_ctx c;
	imp_begin(&c);
	int rc = import_folder(&c, root);
	imp_end(&c, rc, flags & 1);
	return 0;
}
