/*
 * errfmt.c — the error-message formatter (see errfmt.h).
 */
#include <stdio.h>

#include "errfmt.h"

int ib_failv(char *buf, size_t cap, int code, const char *fmt, va_list ap)
{
	if (buf && cap)
		vsnprintf(buf, cap, fmt, ap);
	return code;
}

int ib_failn(char *buf, size_t cap, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ib_failv(buf, cap, code, fmt, ap);
	va_end(ap);
	return code;
}
