/*
 * import_util.c — what every importer shares: the failure message.
 */
#include <stdarg.h>
#include <stdio.h>

#include "import.h"

int import_fail(import_ctx *c, int code, const char *fmt, ...)
{
	if (c->err != NULL && c->errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}
