"""ibstore: a ctypes binding over libibstore (no compiler needed).

    import ibstore
    with ibstore.Dataset("fmnist.ibs") as ds, \\
         ibstore.Run("run.state", samples=len(ds), epochs=10) as run, \\
         ibstore.Loader(ds, run) as loader:
        for epoch in range(10):
            info = loader.epoch_begin(epoch)       # info.samples, info.batches
            for batch in loader:                   # numpy views, valid until release
                losses = ...                       # per-sample, unweighted
                loader.report(batch, losses)
            loader.epoch_end()

The library is found through $IBSTORE_LIBRARY (the path of the library file)
when set, else where `meson install` put it (a package installed by meson),
else next to this package (libibstore.so*), else in the meson build
directory <repo>/build, else on the system library path.  ``ibstore.torch``
is the PyTorch layer.
"""

from ._lib import LibraryNotFoundError, library_path, VERSION as __lib_version__
from .core import (  # noqa: F401
    Batch, Dataset, EpochInfo, IbstoreError, Loader, Run, NO_LABEL, PADDING_WEIGHT, is_padding,
    merge_run, strerror, version,
    OK, EINVAL, ENOMEM, EIO, EFORMAT, EVERSION, ECORRUPT, ETRUNCATED, EMISMATCH, ENOTFOUND,
    EEXIST, ETOOBIG, ECATALOG, EUNSUPPORTED, ESTATE, EBUFSIZE,
)

__version__ = "0.1.0"

__all__ = [
    "Batch", "Dataset", "EpochInfo", "IbstoreError", "LibraryNotFoundError", "Loader", "Run",
    "NO_LABEL", "PADDING_WEIGHT", "is_padding", "library_path", "merge_run", "strerror",
    "version",
]


def __getattr__(name):
    # ``ibstore.torch`` is imported on first use, so that the binding itself
    # does not need PyTorch.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
