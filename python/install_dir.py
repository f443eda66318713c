"""The site-packages directory to install the package into (python/meson.build).

usage: install_dir.py PREFIX MESON_DIR -- prints MESON_DIR (the python
module's get_install_dir) when it is on this interpreter's sys.path or when
no site-packages directory of this interpreter's install schemes is on
sys.path under PREFIX; else the first such directory.
"""

import os
import sys
import sysconfig


def main(prefix, meson_dir):
    prefix = os.path.normpath(prefix)
    meson_dir = os.path.normpath(meson_dir)
    on_path = {os.path.normpath(p) for p in sys.path if p}
    if meson_dir in on_path:
        return meson_dir
    default = sysconfig.get_default_scheme() if hasattr(sysconfig, "get_default_scheme") else None
    schemes = [default] + sorted(sysconfig.get_scheme_names())
    for scheme in schemes:
        if not scheme or not scheme.startswith(("posix", "deb_")):
            continue
        purelib = os.path.normpath(sysconfig.get_paths(scheme)["purelib"])
        if purelib in on_path and purelib.startswith(prefix.rstrip(os.sep) + os.sep):
            return purelib
    return meson_dir


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
