"""The binding's mirrors of the C structs (ibstore/_lib.py) against the library.

_lib.py compares every mirror's ctypes.sizeof with ibstore_struct_size() when
it loads; the versioned structs (ibstore.h, Conventions) carry the size the
binding was built with.
"""
import ctypes

import pytest

import conftest  # noqa: F401  (puts the package on sys.path)
from ibstore import _lib


def test_every_mirror_has_the_library_size():
    for which, cls in _lib.STRUCTS.items():
        assert ctypes.sizeof(cls) == _lib.lib.ibstore_struct_size(which), cls.__name__


def test_a_mirror_that_differs_is_refused_at_load():
    class ibstore_info(ctypes.Structure):  # the mirror without its last field
        _fields_ = _lib.ibstore_info._fields_[:-1]

    with pytest.raises(_lib.LibraryNotFoundError, match="ibstore_info: 112 bytes here, 120"):
        _lib.check_struct_sizes({1: ibstore_info})
    _lib.check_struct_sizes()  # the real mirrors pass


def test_init_sets_the_binding_sizes():
    o = _lib.ibstore_run_opts()
    assert _lib.run_opts_init(o) == 0
    assert o.size == ctypes.sizeof(o) and o.prune.size == ctypes.sizeof(o.prune)
    assert o.batch_size == 128 and o.checkpoint_every == 64 and o.prune.delta == 0.875
    lo = _lib.ibstore_loader_opts()
    assert _lib.loader_opts_init(lo) == 0
    assert lo.size == ctypes.sizeof(lo) and lo.queue_depth == 64


def test_a_struct_without_size_is_refused():
    o = _lib.ibstore_prune_opts()  # zeroed: size 0
    msg = ctypes.create_string_buffer(256)
    assert _lib.lib.ibstore_prune_opts_check(ctypes.byref(o), msg, 256) == -1
    assert b"ibstore_prune_opts.size is 0" in msg.value


def test_run_info_in_an_older_mirror_gets_the_fields_it_has(tmp_path):
    import ibstore

    class old_run_info(ctypes.Structure):  # before `batches` was added
        _fields_ = _lib.ibstore_run_info._fields_[:-1]

    class poisoned(ctypes.Structure):
        _fields_ = [("o", old_run_info), ("poison", ctypes.c_uint8 * 16)]

    with ibstore.Run(tmp_path / "run", samples=100, epochs=2, batch_size=10) as run:
        run.epoch_begin(0)
        w = poisoned()
        ctypes.memset(ctypes.byref(w), 0xA5, ctypes.sizeof(w))
        mirror = ctypes.cast(ctypes.pointer(w.o), ctypes.POINTER(_lib.ibstore_run_info))
        assert _lib.lib.ibstore_run_info_get_sized(run._handle(), mirror,
                                                   ctypes.sizeof(w.o)) == 0
        assert w.o.size == ctypes.sizeof(old_run_info)
        assert w.o.in_epoch == 1 and w.o.cursor == 0
        assert bytes(w.poison) == b"\xa5" * 16  # nothing written past its size
        assert run.info()["batches"] == 10 and "size" not in run.info()
