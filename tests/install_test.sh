#!/usr/bin/env bash
# install_test.sh — `meson install` of this build into a scratch directory
# (--destdir, --no-rebuild), then the installed files used as a user would:
# the library, headers, ibstore.pc and the CLI in their places; the example
# examples/train_fmnist.c compiled against `pkg-config --cflags --libs
# ibstore` alone (the .pc relocated into the scratch directory with
# --define-variable=prefix=) and run for one epoch on a dataset packed by the
# installed CLI; the installed Python package imported by /usr/bin/python3
# with no environment but PYTHONPATH, loading the installed library (found
# through its generated _paths.py, never the build tree's).  Prints TAP.
#
# usage: install_test.sh MESON BUILD_DIR PREFIX LIBDIR INCLUDEDIR BINDIR PURELIB CC SOURCE_ROOT
#   PREFIX, LIBDIR, ... as configured (absolute); CC the build's C compiler
#   command (split at spaces, e.g. "ccache cc").
# IBSTORE_TEST_DATA overrides the Fashion-MNIST directory.
set -u

usage="usage: install_test.sh MESON BUILD_DIR PREFIX LIBDIR INCLUDEDIR BINDIR PURELIB CC SOURCE_ROOT"
MESON=${1:?$usage}
BUILD=${2:?$usage}
PREFIX=${3:?$usage}
LIBDIR=${4:?$usage}
INCLUDEDIR=${5:?$usage}
BINDIR=${6:?$usage}
PURELIB=${7:?$usage}
PURELIB=${PURELIB%/}
CC=${8:?$usage}
SRC=${9:?$usage}
DATA=${IBSTORE_TEST_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3 # Debian's interpreter, whatever python3 comes first on PATH

T=$(mktemp -d "${TMPDIR:-/tmp}/ibstore-install-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
D=$T/dest # the --destdir: every installed file is under $D$PREFIX
# shellcheck disable=SC2034 # IB: the installed command, for tap.sh's run
IB=$D$BINDIR/ibstore

. "$(dirname "$0")/tap.sh"
# fail_with DESCRIPTION FILE: not ok, with FILE's last lines as comments
fail_with() {
	local lines
	mapfile -t lines < <(tail -n 15 "$2")
	not_ok "$1" "${lines[@]}"
}

if "$MESON" install -C "$BUILD" --destdir "$D" --no-rebuild --quiet >"$T/install.log" 2>&1; then
	ok "meson install --destdir"
else
	fail_with "meson install --destdir" "$T/install.log"
	tap_done
	exit
fi

for f in "$LIBDIR/libibstore.so" "$LIBDIR/libibstore.a" "$INCLUDEDIR/ibstore.h" \
	"$LIBDIR/pkgconfig/ibstore.pc" "$BINDIR/ibstore" "$PURELIB/ibstore/__init__.py" \
	"$PURELIB/ibstore/_paths.py"; do
	check "installed $f" test -e "$D$f"
done
# every module of the source package is installed
for f in "$SRC"/python/ibstore/*.py; do
	[ "$(basename "$f")" = __init__.py ] && continue
	check "installed $PURELIB/ibstore/$(basename "$f")" test -e "$D$PURELIB/ibstore/$(basename "$f")"
done
# with MPI: its library, header and .pc too
if [ -e "$BUILD/libibstore_mpi.so" ]; then
	for f in "$LIBDIR/libibstore_mpi.so" "$INCLUDEDIR/ibstore_mpi.h" "$LIBDIR/pkgconfig/ibstore-mpi.pc"; do
		check "installed $f" test -e "$D$f"
	done
fi

# pkg-config: only the installed ibstore.pc (the system's directories stay
# searched for the Requires.private of its --cflags), moved into $D
pc() {
	PKG_CONFIG_PATH=$D$LIBDIR/pkgconfig pkg-config --define-variable=prefix="$D$PREFIX" "$@"
}
cflags=$(pc --cflags ibstore) && libs=$(pc --libs ibstore)
check "pkg-config --cflags --libs ibstore" test $? -eq 0
check "pkg-config: -I is the installed include directory ($cflags)" \
	grep -qF -- "-I$D$INCLUDEDIR" <<<"$cflags"
check "pkg-config: -L is the installed library directory ($libs)" \
	grep -qF -- "-L$D$LIBDIR" <<<"$libs"

# the example, copied away from the source tree so that only -I finds
# ibstore.h; -lm is the example's own (its model's exp and log)
cp "$SRC/examples/train_fmnist.c" "$T/"
# shellcheck disable=SC2086 # word splitting of the flags is wanted
if (cd "$T" && $CC $cflags -o train_fmnist train_fmnist.c $libs -lm) >"$T/cc.log" 2>&1; then
	ok "train_fmnist.c compiles with pkg-config --cflags --libs ibstore"
else
	fail_with "train_fmnist.c compiles with pkg-config --cflags --libs ibstore" "$T/cc.log"
fi
export LD_LIBRARY_PATH=$D$LIBDIR
check "the example loads the installed libibstore" \
	grep -qF "$D$LIBDIR/libibstore.so" <<<"$(ldd "$T/train_fmnist" 2>&1)"
help_ok() { "$T/train_fmnist" --help >/dev/null; }
check "train_fmnist --help" help_ok
if [ -r "$DATA/t10k-images-idx3-ubyte.gz" ] && [ -r "$DATA/t10k-labels-idx1-ubyte.gz" ]; then
	run 0 "installed ibstore packs Fashion-MNIST t10k" pack --from idx \
		"$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" "$T/t10k.ibs"
	if "$T/train_fmnist" --train "$T/t10k.ibs" --test "$T/t10k.ibs" --epochs 1 \
		>"$T/train.out" 2>&1 && grep -q '^summary ' "$T/train.out"; then
		ok "train_fmnist trains one epoch"
	else
		fail_with "train_fmnist trains one epoch" "$T/train.out"
	fi
else
	ok "# SKIP no Fashion-MNIST in $DATA: the example's run"
fi
unset LD_LIBRARY_PATH

# Python: an empty environment but PATH and PYTHONPATH (no IBSTORE_LIBRARY)
if env -i PATH=/usr/bin:/bin PYTHONPATH="$D$PURELIB" "$PY" -c '
import ibstore, ibstore.torch
print(ibstore.__file__)
print(ibstore.library_path)
print(ibstore.version())
' >"$T/py.out" 2>"$T/py.err"; then
	ok "installed package: import ibstore, ibstore.torch"
else
	fail_with "installed package: import ibstore, ibstore.torch" "$T/py.err"
fi
pkg_file=$(sed -n 1p "$T/py.out")
lib_path=$(sed -n 2p "$T/py.out")
check "ibstore.__file__ is the installed one ($pkg_file)" \
	test "$pkg_file" = "$D$PURELIB/ibstore/__init__.py"
check "ibstore.library_path is the installed library ($lib_path)" \
	test "$(realpath -m "$lib_path")" = "$(realpath -m "$D$LIBDIR/libibstore.so.0")" \
	-o "$(realpath -m "$lib_path")" = "$(realpath -m "$D$LIBDIR/libibstore.so")"
# without the installed library the installed package fails, naming the
# installed library directory, rather than loading something else
mv "$D$LIBDIR" "$D$LIBDIR.away"
if env -i PATH=/usr/bin:/bin PYTHONPATH="$D$PURELIB" "$PY" -c 'import ibstore' >/dev/null 2>"$T/py2.err"; then
	not_ok "no installed library: import fails" "import ibstore succeeded"
else
	check "no installed library: import fails naming the installed library directory" \
		grep -qF "installed library directory: $D$LIBDIR/libibstore.so*" "$T/py2.err"
fi
mv "$D$LIBDIR.away" "$D$LIBDIR"

# --prefix=/usr/local or /usr: the package goes where /usr/bin/python3
# looks with no PYTHONPATH (python/install_dir.py, given what meson 1.0's
# get_install_dir answers there)
for p in /usr/local /usr; do
	dir=$("$PY" "$SRC/python/install_dir.py" "$p" "$p/lib/python3/dist-packages/")
	check "--prefix=$p installs the package into $dir, on /usr/bin/python3's sys.path" \
		env -i PATH=/usr/bin:/bin "$PY" -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "$dir"
done

tap_done
