/*
 * import_util.c — what every importer shares: the failure message.
 */
#include <stdarg.h>
#include <stdio.h>

#include "errfmt.h"
#include "import.h"

int import_fail(import_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ib_failv(c->err, c->errlen, code, fmt, ap);
	va_end(ap);
	return code;
}
