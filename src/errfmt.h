/*
 * errfmt.h — the one error-message formatter.  Every handle (dataset,
 * writer, run, loader), the MPI exchange and the CLI's importers report a
 * failure the same way: format into the handle's buffer, return the code.
 * errfmt.c is compiled into each binary that uses it (libibstore does not
 * export it), so the function exists once in the source.
 */
#ifndef IBSTORE_ERRFMT_H
#define IBSTORE_ERRFMT_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into buf (cap bytes, always NUL-terminated; nothing when buf is
 * NULL or cap is 0) and returns `code`. */
int ib_failv(char *buf, size_t cap, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
int ib_failn(char *buf, size_t cap, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
