"""Loading libibstore and the ctypes mirror of include/ibstore.h (API 0.1).

Every structure below repeats the C declaration field by field, in order and
with the same types, so that ctypes lays it out exactly as the C compiler
does.  C enums are ``int`` on the platforms ibstore supports.  At load every
mirror's size is compared with the library's (ibstore_struct_size), so a
field added on one side only is an ImportError, not silent corruption.  The
versioned structs (ibstore.h, Conventions: a leading ``size``) are filled by
the *_init helpers below, which pass ctypes.sizeof as the C macros pass
sizeof.
"""

import ctypes
import ctypes.util
import glob
import os

__all__ = ["lib", "library_path", "LibraryNotFoundError", "find_library_candidates"]

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_VAR = "IBSTORE_LIBRARY"
ABI = (0, 1)  # the header version these declarations mirror


class LibraryNotFoundError(ImportError):
    """libibstore could not be found or loaded; the message names every place tried."""


def find_library_candidates():
    """The places searched for the library, in order, as (description, path or None)."""
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        places.append(("%s=%s" % (ENV_VAR, env), env))
        return places  # an explicit choice is never silently replaced
    # where `meson install` put the library (_paths.py exists only in an
    # installed package): first at its place relative to the site-packages
    # directory the package actually sits in (an install with --destdir, or
    # a prefix moved as a whole), then at the configured path
    places.extend(_installed_candidates())
    # next to the package
    beside = sorted(glob.glob(os.path.join(HERE, "libibstore.so*")), key=len)
    if beside:
        places.extend(("next to the package: %s" % p, p) for p in beside)
    else:
        places.append(("next to the package: %s" % os.path.join(HERE, "libibstore.so*"), None))
    # the meson build directory of the repository this package sits in
    build = os.path.normpath(os.path.join(HERE, "..", "..", "build", "libibstore.so"))
    places.append(("meson build directory: %s" % build, build))
    found = ctypes.util.find_library("ibstore")
    places.append(("system library path: ctypes.util.find_library('ibstore') -> %s" % found,
                   found))
    return places


def _installed_candidates():
    try:
        from . import _paths
    except ImportError:
        return []  # not installed by meson: the package of a source tree
    dirs = [os.path.normpath(os.path.join(os.path.dirname(HERE),
                                          os.path.relpath(_paths.LIBDIR, _paths.PURELIB))),
            os.path.normpath(_paths.LIBDIR)]
    places = []
    for d in dirs if dirs[0] != dirs[1] else dirs[:1]:
        found = sorted(glob.glob(os.path.join(d, "libibstore.so*")), key=len)
        if found:
            places.append(("installed library directory: %s" % found[0], found[0]))
        else:
            places.append(("installed library directory: %s" % os.path.join(d, "libibstore.so*"),
                           None))
    return places


def _load():
    tried = []
    env_set = bool(os.environ.get(ENV_VAR))
    for desc, path in find_library_candidates():
        if path is None:
            tried.append("%s: no such file" % desc)
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: no such file" % desc)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s" % (desc, e))
    msg = "cannot load libibstore; looked in:\n  " + "\n  ".join(tried)
    if env_set:
        msg += ("\n(%s is set, so no other place was searched; unset it to search the "
                "installed library directory, next to "
                "the package, in <repo>/build and on the system library path)" % ENV_VAR)
    else:
        msg += ("\nbuild it (meson setup build && ninja -C build) or set %s to the path of "
                "libibstore.so" % ENV_VAR)
    raise LibraryNotFoundError(msg)


lib, library_path = _load()

# ---------------------------------------------------------------- types ----

c_u8, c_u32, c_u64, c_i32 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32
c_int, c_size, c_double, c_char_p = ctypes.c_int, ctypes.c_size_t, ctypes.c_double, ctypes.c_char_p
P = ctypes.POINTER
c_enum = ctypes.c_int


class ibstore_info(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("format_version", c_u32),
        ("uuid", c_u8 * 16),
        ("created", c_u64),
        ("samples", c_u64),
        ("shards", c_u32),
        ("alignment", c_u32),
        ("bytes_stored", c_u64),
        ("bytes_raw", c_u64),
        ("bytes_files", c_u64),
        ("codec_count", c_u64 * 2),
        ("labels", c_u32),
        ("fixed_size", c_u64),
        ("max_size", c_u64),
        ("keys", c_u64),
    ]


class ibstore_location(ctypes.Structure):
    _fields_ = [
        ("id", c_u64),
        ("shard", c_u32),
        ("codec", c_u32),
        ("offset", c_u64),
        ("payload_offset", c_u64),
        ("stored_size", c_u32),
        ("size", c_u32),
        ("label", c_i32),
    ]


class ibstore_problem(ctypes.Structure):
    _fields_ = [
        ("code", c_int),
        ("shard", c_u32),
        ("offset", c_u64),
        ("id", c_u64),
        ("message", c_char_p),
    ]


class ibstore_verify_stats(ctypes.Structure):
    _fields_ = [
        ("records_checked", c_u64),
        ("records_bad", c_u64),
        ("shards_bad", c_u64),
        ("bytes_read", c_u64),
    ]


class ibstore_prune_opts(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("policy", c_enum),
        ("mode", c_enum),
        ("ratio", c_double),
        ("delta", c_double),
        ("epochs", c_u32),
        ("seed", c_u64),
        ("ema", c_double),
    ]


class ibstore_plan_stats(ctypes.Structure):
    _fields_ = [
        ("samples", c_u64),
        ("kept", c_u64),
        ("pruned", c_u64),
        ("below_mean", c_u64),
        ("unseen", c_u64),
        ("threshold", c_double),
        ("weight_sum", c_double),
        ("prunes", c_int),
    ]


class ibstore_plan(ctypes.Structure):
    _fields_ = [
        ("len", c_u64),
        ("ids", P(c_u64)),
        ("weights", P(ctypes.c_float)),
        ("stats", ibstore_plan_stats),
    ]


class ibstore_run_opts(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("prune", ibstore_prune_opts),
        ("samples", c_u64),
        ("batch_size", c_u32),
        ("drop_last", c_int),
        ("rank", c_u32),
        ("world", c_u32),
        ("slice", c_enum),
        ("checkpoint_every", c_u32),
    ]


class ibstore_epoch_info(ctypes.Structure):
    _fields_ = [
        ("epoch", c_u32),
        ("samples", c_u64),
        ("batches", c_u64),
        ("cursor", c_u64),
        ("plan", ibstore_plan_stats),
    ]


class ibstore_epoch_io(ctypes.Structure):
    _fields_ = [
        ("bytes_read", c_u64),
        ("bytes_skipped", c_u64),
        ("seconds", c_double),
    ]


class ibstore_epoch_stats(ctypes.Structure):
    _fields_ = [
        ("epoch", c_u32),
        ("plan", ibstore_plan_stats),
        ("io", ibstore_epoch_io),
    ]


class ibstore_run_info(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("epoch", c_u32),
        ("in_epoch", c_int),
        ("cursor", c_u64),
        ("epochs_done", c_u32),
        ("reports_rejected", c_u64),
        ("committed", c_u64),
        ("batches", c_u64),
        ("start", c_u64),
        ("generation", c_u32),
    ]


ON_READ = ctypes.CFUNCTYPE(None, ctypes.c_void_p, c_u32, c_u64, c_u64)


class ibstore_loader_opts(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("batch_size", c_u32),
        ("drop_last", c_int),
        ("prefetch", c_u32),
        ("queue_depth", c_u32),
        ("threads", c_u32),
        ("backend", c_enum),
        ("direct", c_int),
        ("order", c_enum),
        ("verify", c_int),
        ("corrupt", c_enum),
        ("gap", c_u64),
        ("max_read", c_u64),
        ("budget", c_u64),
        ("on_read", ON_READ),
        ("on_read_ctx", ctypes.c_void_p),
        ("images", ctypes.c_void_p),  # const ibstore_image_opts * (set via images_ptr)
    ]


class ibstore_image_opts(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("width", c_u32),
        ("height", c_u32),
        ("layout", c_enum),
        ("dtype", c_enum),
        ("mode", c_enum),
        ("scale", ctypes.c_float * 2),
        ("ratio", ctypes.c_float * 2),
        ("flip", ctypes.c_float),
        ("resize_short", c_u32),
        ("mean", ctypes.c_float * 3),
        ("std", ctypes.c_float * 3),
        ("max_pixels", c_u64),
        ("seed", c_u64),
        ("pad", c_u32),
    ]


class ibstore_batch(ctypes.Structure):
    _fields_ = [
        ("epoch", c_u32),
        ("index", c_u64),
        ("n", c_size),
        ("ids", P(c_u64)),
        ("labels", P(c_i32)),
        ("weights", P(ctypes.c_float)),
        ("sizes", P(c_u32)),
        ("offsets", P(c_u64)),
        ("data", P(c_u8)),
        ("data_size", c_u64),
        ("sample_size", c_u32),
        ("n_skipped", c_size),
        ("skipped_ids", P(c_u64)),
        ("ndim", c_u32),
        ("shape", c_u32 * 4),
        ("dtype", ctypes.c_int),
    ]


class ibstore_loader_stats(ctypes.Structure):
    _fields_ = [
        ("size", c_u32),
        ("epoch", c_u32),
        ("batches", c_u64),
        ("samples", c_u64),
        ("kept", c_u64),
        ("pruned", c_u64),
        ("bytes_read", c_u64),
        ("bytes_skipped", c_u64),
        ("read_around", c_u64),
        ("requests", c_u64),
        ("corrupt_skipped", c_u64),
        ("io_wait", c_double),
        ("seconds", c_double),
        ("backend", c_char_p),
        ("buffers", c_char_p),
        ("direct", c_int),
        ("registered", c_int),
    ]


VERIFY_CB = ctypes.CFUNCTYPE(c_int, P(ibstore_problem), ctypes.c_void_p)

# Opaque handles are kept as void pointers.
H = ctypes.c_void_p
PH = P(ctypes.c_void_p)

_PROTOS = {
    "ibstore_strerror": (c_char_p, [c_int]),
    "ibstore_version": (c_char_p, []),
    "ibstore_codec_name": (c_char_p, [c_int]),
    "ibstore_compress_name": (c_char_p, [c_enum]),
    # dataset
    "ibstore_dataset_open": (c_int, [c_char_p, PH]),
    "ibstore_dataset_close": (None, [H]),
    "ibstore_dataset_errmsg": (c_char_p, [H]),
    "ibstore_dataset_info_get_sized": (c_int, [H, P(ibstore_info), c_size]),
    "ibstore_dataset_locate": (c_int, [H, c_u64, P(ibstore_location)]),
    "ibstore_dataset_read": (c_int, [H, c_u64, ctypes.c_void_p, c_size, P(c_size), P(c_i32)]),
    "ibstore_dataset_find_key": (c_int, [H, c_char_p, P(c_u64)]),
    "ibstore_dataset_key": (c_int, [H, c_u64, P(c_char_p)]),
    "ibstore_dataset_class_name": (c_char_p, [H, c_i32]),
    "ibstore_dataset_attr": (c_char_p, [H, c_char_p]),
    "ibstore_dataset_shard_path": (c_char_p, [H, c_u32]),
    "ibstore_dataset_verify": (c_int, [H, VERIFY_CB, ctypes.c_void_p, P(ibstore_verify_stats)]),
    "ibstore_dataset_evict": (c_int, [H]),
    # pruning
    "ibstore_prune_opts_init_sized": (c_int, [P(ibstore_prune_opts), c_size]),
    "ibstore_policy_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_mode_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_policy_name": (c_char_p, [c_enum]),
    "ibstore_mode_name": (c_char_p, [c_enum]),
    "ibstore_slice_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_slice_name": (c_char_p, [c_enum]),
    "ibstore_is_padding": (c_int, [ctypes.c_float]),
    "ibstore_prune_opts_check": (c_int, [P(ibstore_prune_opts), c_char_p, c_size]),
    "ibstore_prune_epoch_prunes": (c_int, [P(ibstore_prune_opts), c_u32]),
    "ibstore_prune_initial_score": (ctypes.c_float, [P(ibstore_prune_opts)]),
    # run
    "ibstore_run_opts_init_sized": (c_int, [P(ibstore_run_opts), c_size, c_size]),
    "ibstore_run_open": (c_int, [c_char_p, P(ibstore_run_opts), PH]),
    "ibstore_run_open_elastic": (c_int, [c_char_p, P(ibstore_run_opts), PH]),
    "ibstore_run_file": (c_char_p, [H]),
    "ibstore_run_merge": (c_int, [c_char_p, c_char_p, P(c_u32), P(c_u32), c_char_p, c_size]),
    "ibstore_run_close": (None, [H]),
    "ibstore_run_errmsg": (c_char_p, [H]),
    "ibstore_run_config_get_sized": (c_int, [H, P(ibstore_run_opts), c_size, c_size]),
    "ibstore_run_epoch_begin": (c_int, [H, c_u32, P(ibstore_epoch_info)]),
    "ibstore_run_batch": (c_int, [H, c_u64, P(P(c_u64)), P(P(ctypes.c_float)), P(c_size)]),
    "ibstore_run_slice": (c_int, [H, P(P(c_u64)), P(P(ctypes.c_float)), P(c_u64)]),
    "ibstore_run_plan": (P(ibstore_plan), [H]),
    "ibstore_run_report": (c_int, [H, ctypes.c_void_p, ctypes.c_void_p, c_size]),
    "ibstore_run_advance": (c_int, [H, c_u64]),
    "ibstore_run_checkpoint": (c_int, [H]),
    "ibstore_run_epoch_end": (c_int, [H, P(ibstore_epoch_io)]),
    "ibstore_run_info_get_sized": (c_int, [H, P(ibstore_run_info), c_size]),
    "ibstore_run_epoch_stats_get": (c_int, [H, c_u32, P(ibstore_epoch_stats)]),
    "ibstore_run_scores": (P(ctypes.c_float), [H, P(c_u64)]),
    # loader
    "ibstore_loader_opts_init_sized": (c_int, [P(ibstore_loader_opts), c_size]),
    "ibstore_backend_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_order_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_corrupt_parse": (c_int, [c_char_p, P(c_enum)]),
    "ibstore_backend_name": (c_char_p, [c_enum]),
    "ibstore_order_name": (c_char_p, [c_enum]),
    "ibstore_corrupt_name": (c_char_p, [c_enum]),
    "ibstore_image_opts_init_sized": (c_int, [P(ibstore_image_opts), c_size]),
    "ibstore_layout_name": (c_char_p, [c_enum]),
    "ibstore_dtype_name": (c_char_p, [c_enum]),
    "ibstore_images_mode_name": (c_char_p, [c_enum]),
    "ibstore_loader_open": (c_int, [H, H, P(ibstore_loader_opts), PH]),
    "ibstore_loader_close": (None, [H]),
    "ibstore_loader_errmsg": (c_char_p, [H]),
    "ibstore_loader_epoch_begin": (c_int, [H, c_u32, P(ibstore_epoch_info)]),
    "ibstore_loader_next": (c_int, [H, P(P(ibstore_batch))]),
    "ibstore_loader_release": (None, [H, P(ibstore_batch)]),
    "ibstore_loader_report": (c_int, [H, P(ibstore_batch), ctypes.c_void_p]),
    "ibstore_loader_epoch_end": (c_int, [H]),
    "ibstore_loader_stats_get_sized": (c_int, [H, P(ibstore_loader_stats), c_size]),
    "ibstore_struct_size": (c_size, [c_enum]),
}

for _name, (_res, _args) in _PROTOS.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        raise LibraryNotFoundError(
            "%s lacks the symbol %s: a build older than this binding (rebuild it with ninja) "
            "or not libibstore %d.%d; set %s to another library file"
            % (library_path, _name, ABI[0], ABI[1], ENV_VAR)) from None
    _f.restype = _res
    _f.argtypes = _args

VERSION = lib.ibstore_version().decode()
if tuple(int(x) for x in VERSION.split(".")[:2]) != ABI:
    raise LibraryNotFoundError("%s is libibstore %s; this binding mirrors the %d.%d API"
                               % (library_path, VERSION, *ABI))

# Every mirrored struct with its ibstore_struct value (include/ibstore.h);
# ibstore_writer_opts (2) is not mirrored: the binding does not write datasets.
STRUCTS = {
    1: ibstore_info, 3: ibstore_prune_opts, 4: ibstore_run_opts,
    5: ibstore_loader_opts, 6: ibstore_location, 7: ibstore_problem, 8: ibstore_verify_stats,
    9: ibstore_plan_stats, 10: ibstore_plan, 11: ibstore_epoch_info, 12: ibstore_epoch_io,
    13: ibstore_epoch_stats, 14: ibstore_run_info, 15: ibstore_batch, 16: ibstore_loader_stats,
    17: ibstore_image_opts,
}


def check_struct_sizes(structs=None):
    """Raises LibraryNotFoundError when a mirror's size differs from the library's:
    a field added to include/ibstore.h and not here (or the reverse)."""
    bad = []
    for which, cls in (structs or STRUCTS).items():
        theirs, ours = lib.ibstore_struct_size(which), ctypes.sizeof(cls)
        if theirs != ours:
            bad.append("%s: %d bytes here, %d in the library" % (cls.__name__, ours, theirs))
    if bad:
        raise LibraryNotFoundError("%s does not match this binding's structs (%s): the binding "
                                   "and the library come from different sources"
                                   % (library_path, "; ".join(bad)))


check_struct_sizes()


# The size rule of the versioned structs (ibstore.h, Conventions): the C
# macros pass sizeof; a binding passes ctypes.sizeof of its mirror.
def prune_opts_init(o):
    return lib.ibstore_prune_opts_init_sized(ctypes.byref(o), ctypes.sizeof(o))


def run_opts_init(o):
    return lib.ibstore_run_opts_init_sized(ctypes.byref(o), ctypes.sizeof(o),
                                           ctypes.sizeof(o.prune))


def loader_opts_init(o):
    return lib.ibstore_loader_opts_init_sized(ctypes.byref(o), ctypes.sizeof(o))


def image_opts_init(o):
    return lib.ibstore_image_opts_init_sized(ctypes.byref(o), ctypes.sizeof(o))


def dataset_info_get(h, o):
    return lib.ibstore_dataset_info_get_sized(h, ctypes.byref(o), ctypes.sizeof(o))


def run_config_get(h, o):
    return lib.ibstore_run_config_get_sized(h, ctypes.byref(o), ctypes.sizeof(o),
                                            ctypes.sizeof(o.prune))


def run_info_get(h, o):
    return lib.ibstore_run_info_get_sized(h, ctypes.byref(o), ctypes.sizeof(o))


def loader_stats_get(h, o):
    return lib.ibstore_loader_stats_get_sized(h, ctypes.byref(o), ctypes.sizeof(o))
