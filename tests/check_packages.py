#!/usr/bin/python3
"""check_packages.py — scripts/setup installs every Debian package that the
tests, examples, benchmarks and the demo import or run (TAP output).

"Setup is the only install step": a fresh Debian machine that ran
scripts/setup must be able to run every script of the repository.  This
checker finds

  * every Python module imported anywhere under python/, examples/, bench/,
    tests/ and scripts/: in .py files and extension-less scripts with a
    python shebang (parsed with `ast`, imports inside functions included,
    plus pytest.importorskip/importlib.import_module of a constant name and
    Python code in string constants, such as the code a test hands to
    `python3 -c`), in Python heredocs of shell scripts
    ("$PY" - ARGS <<'EOF' ... EOF) and in their `"$PY" -c '...'` strings
    and `"$PY" -m MODULE` runs;
  * the programs and data of Debian packages named in NEEDLES below
    (gdb, valgrind, fio, mpirun, ...) wherever a script uses them,

drops the standard library (sys.stdlib_module_names) and the repository's
own modules (any top-level .py file or package of the repository, such as
ibstore, conftest, compat_vectors), maps each remaining module to its Debian
package with MODULE_PACKAGES and prints one TAP case per module and per
program: ok when its package is in the PACKAGES array of scripts/setup.
A module missing from MODULE_PACKAGES fails too (add it there, and its
package to scripts/setup), and so does embedded Python that does not parse,
since its imports cannot be seen.

usage: /usr/bin/python3 tests/check_packages.py [REPO]   (default: this
file's repository)
"""
import ast
import os
import re
import sys
import textwrap

# Debian package of each third-party module a script may import.  Import
# name -> package; the names differ where the project's import name does
# (PIL is Pillow, skimage scikit-image, ...).
MODULE_PACKAGES = {
    "numpy": "python3-numpy",
    "torch": "python3-torch",
    "torchvision": "python3-torchvision",
    "matplotlib": "python3-matplotlib",
    "PIL": "python3-pil",
    "pytest": "python3-pytest",
    "_pytest": "python3-pytest",
    "skimage": "python3-skimage",
    "sklearn": "python3-sklearn",
    "scipy": "python3-scipy",
    "pandas": "python3-pandas",
    "yaml": "python3-yaml",
    "h5py": "python3-h5py",
    "lmdb": "python3-lmdb",
    "lz4": "python3-lz4",
    "xxhash": "python3-xxhash",
    "zstandard": "python3-zstandard",
    "mpi4py": "python3-mpi4py",
    "psutil": "python3-psutil",
    "tqdm": "python3-tqdm",
    "cv2": "python3-opencv",
    "hypothesis": "python3-hypothesis",
}

# Programs and data that scripts use, by the Debian package that ships them:
# (regular expression matched on the non-comment lines of the scanned
# scripts, meson.build files included; package; what it is).  Programs of
# essential packages (coreutils, util-linux, procps' kin in the base system,
# tar, gzip, sed, ...) are not listed.
NEEDLES = [
    (r"\bgdb\b", "gdb", "gdb (tests/watchdog prints the stacks of a hung test)"),
    (r"\bvalgrind\b", "valgrind", "valgrind"),
    (r"\bfio\b", "fio", "fio"),
    (r"/usr/bin/time\b", "time", "GNU time (/usr/bin/time)"),
    (r"\bmpirun\b", "openmpi-bin", "mpirun"),
    (r"(?<![\w-])clang\b(?![-.])", "clang", "clang"),
    (r"\bmeson\s+(setup|test)\b", "meson", "meson"),
    (r"\bninja\s+-C\b", "ninja-build", "ninja"),
    (r"/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist", "Fashion-MNIST"),
]

SCAN_DIRS = ["python", "examples", "bench", "tests", "scripts"]
SKIP_DIRS = {"__pycache__", "corpus", "golden", ".git", ".pytest_cache"}

# Where the tests must find something, so that a broken extractor cannot
# pass by finding nothing: (module, file, how it is imported there).  If one
# of these files stops importing the module, pick another real import.
KNOWN = [
    ("numpy", "tests/test_compat.py", "py"),
    ("matplotlib", "examples/train_fmnist.py", "py"),
    ("json", "tests/cli_test.sh", "-c"),
    ("statistics", "examples/compare_fmnist.sh", "heredoc"),
    ("ibstore", "python/tests/test_binding.py", "string"),
]


class Found:
    """Imports and problems collected over the repository."""

    def __init__(self):
        self.imports = []  # (module, relpath, line, kind)
        self.errors = []  # (relpath, line, message)
        self.needles = {}  # package -> [(relpath, line)]
        self.files = 0


# ------------------------------------------------------------- Python ----

def imports_of_tree(tree):
    """(module, line) of every absolute import in tree, the top-level name
    only (torch.nn -> torch)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append((a.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                out.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if (name in ("importorskip", "import_module", "__import__") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and not node.args[0].value.startswith(".")):
                out.append((node.args[0].value.split(".")[0], node.lineno))
    return out


def docstring_nodes(tree):
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                ids.add(id(body[0].value))
    return ids


def code_in_strings(tree):
    """(code tree, line) of string constants that are Python with imports:
    code handed to `python3 -c` or to a helper that runs it."""
    out = []
    docs = docstring_nodes(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docs and "import" in node.value):
            try:
                sub = ast.parse(textwrap.dedent(node.value))
            except (SyntaxError, ValueError):
                continue
            if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(sub)):
                out.append((sub, node.lineno))
    return out


def scan_python(found, rel, text):
    try:
        tree = ast.parse(text, filename=rel)
    except SyntaxError as e:
        found.errors.append((rel, e.lineno or 0, f"does not parse as Python ({e.msg})"))
        return
    for mod, line in imports_of_tree(tree):
        found.imports.append((mod, rel, line, "py"))
    for sub, line in code_in_strings(tree):
        for mod, sub_line in imports_of_tree(sub):
            found.imports.append((mod, rel, line + sub_line - 1, "string"))


# -------------------------------------------------------------- shell ----

def python_vars(text):
    """Names of shell variables set to a Python interpreter (PY=/usr/bin/python3)."""
    names = {"PY", "PYTHON", "PYTHON3"}
    assignment = re.compile(r"""^\s*(?:export\s+|local\s+|readonly\s+)?
                                ([A-Za-z_]\w*)=["']?\S*python3?(?:\.\d+)?["']?
                                \s*(?:\#.*)?$""", re.M | re.X)
    for m in assignment.finditer(text):
        names.add(m.group(1))
    return names


def interpreter_re(names):
    """Where a shell script runs Python: "$PY", $PY, ${PY}, python3,
    /usr/bin/python3, env python3."""
    var = "|".join(sorted(re.escape(n) for n in names))
    return re.compile(r"""(?: "\$\{?(?:%s)\}?"
                            | \$\{?(?:%s)\}?(?!\w)
                            | (?<![\w/.-])(?:/usr/bin/)?(?:env\s+)?python3?(?:\.\d+)?(?![\w.-]) )"""
                      % (var, var), re.X)


def shell_word(text, i):
    """The value of the shell word starting at text[i] (quotes removed,
    adjacent quoted parts joined) and the index after it; None if a quote
    is not closed."""
    out = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                return None, n
            out.append(text[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                    if text[i + 1] != "\n":
                        out.append(text[i + 1])
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            if i >= n:
                return None, n
            i += 1
        elif c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        elif c.isspace() or c in ";&|<>()":
            break
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def parse_embedded(code):
    """ast of shell-embedded Python; shell expansions ($VAR, ${VAR}) that
    make it unparsable are replaced by a name on the second try."""
    try:
        return ast.parse(code)
    except SyntaxError:
        pass
    return ast.parse(re.sub(r"\$\{?\w+\}?|\$\([^)]*\)", "__shell__", code))


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def add_embedded(found, rel, code, first_line, kind, what):
    try:
        tree = parse_embedded(code)
    except SyntaxError as e:
        found.errors.append((rel, first_line,
                             f"{what} does not parse as Python ({e.msg}, its line {e.lineno}): "
                             "its imports cannot be checked"))
        return
    for mod, line in imports_of_tree(tree):
        found.imports.append((mod, rel, first_line + line - 1, kind))


def scan_shell(found, rel, text):
    interp = interpreter_re(python_vars(text))
    lines = text.split("\n")
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln) + 1)

    # -c CODE and -m MODULE after an interpreter
    for m in interp.finditer(text):
        lno = line_of(text, m.start())
        if lines[lno - 1].lstrip().startswith("#"):
            continue
        rest = re.match(r"(?:[ \t]+-[BEIsSuOqPv]+)*[ \t]+-(c|m)[ \t]+", text[m.end():])
        if not rest:
            continue
        pos = m.end() + rest.end()
        if rest.group(1) == "m":
            mod = re.match(r"[A-Za-z_][\w.]*", text[pos:])
            if mod:
                found.imports.append((mod.group(0).split(".")[0], rel, lno, "-m"))
            continue
        code, _ = shell_word(text, pos)
        if code is None:
            found.errors.append((rel, lno, "unterminated quote after python -c"))
            continue
        add_embedded(found, rel, code, line_of(text, pos), "-c", "the `python -c` code")

    # heredocs fed to an interpreter
    i = 0
    while i < len(lines):
        ln = lines[i]
        hd = re.search(r"(?<!<)<<(-?)[ \t]*(['\"]?)([A-Za-z_]\w*)\2", ln)
        if not hd or ln.lstrip().startswith("#"):
            i += 1
            continue
        delim, strip_tabs = hd.group(3), hd.group(1) == "-"
        body, j = [], i + 1
        while j < len(lines):
            b = lines[j].lstrip("\t") if strip_tabs else lines[j]
            if b == delim:
                break
            body.append(b)
            j += 1
        if interp.search(ln[:hd.start()]):
            add_embedded(found, rel, "\n".join(body), i + 2, "heredoc",
                         f"the heredoc <<{delim} fed to Python")
        i = j + 1


# ---------------------------------------------------------- the repo ----

def kind_of(path, text):
    first = text.split("\n", 1)[0]
    if path.endswith(".py"):
        return "python"
    if first.startswith("#!"):
        if "python" in first:
            return "python"
        if re.search(r"\b(ba|da|k|z)?sh\b", first):
            return "shell"
        return None
    if path.endswith(".sh"):
        return "shell"
    if os.path.basename(path) == "meson.build":
        return "meson"
    return None


def read_text(path):
    try:
        with open(path, "rb") as f:
            data = f.read(4 << 20)
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def own_modules(repo):
    """Top-level module names the repository itself provides: the .py files
    and packages in every directory that is not itself a package (python/
    holds the ibstore package; python/ibstore/torch.py is ibstore.torch,
    not torch)."""
    names = set()
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")
                   and d != "work"]
        if "__init__.py" in files:
            continue
        for f in files:
            if f.endswith(".py"):
                names.add(f[:-3])
        for d in dirs:
            if os.path.exists(os.path.join(root, d, "__init__.py")):
                names.add(d)
    return names


def scan_needles(found, rel, text):
    for lno, ln in enumerate(text.split("\n"), 1):
        if ln.lstrip().startswith("#"):
            continue
        for pattern, package, _ in NEEDLES:
            if re.search(pattern, ln):
                found.needles.setdefault(package, []).append((rel, lno))


def scan_repo(repo):
    found = Found()
    me = os.path.relpath(os.path.abspath(__file__), repo)
    for top in SCAN_DIRS:
        for root, dirs, files in os.walk(os.path.join(repo, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for f in sorted(files):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, repo)
                if rel in (me, os.path.join("scripts", "setup")):
                    continue  # they name the packages, they do not use them
                text = read_text(path)
                if text is None:
                    continue
                kind = kind_of(path, text)
                if kind is None:
                    continue
                found.files += 1
                if kind == "python":
                    scan_python(found, rel, text)
                elif kind == "shell":
                    scan_shell(found, rel, text)
                scan_needles(found, rel, text)
    return found


def setup_packages(repo):
    """The PACKAGES array of scripts/setup, comments dropped."""
    with open(os.path.join(repo, "scripts", "setup"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^PACKAGES=\((.*?)^\)", text, re.M | re.S)
    if not m:
        return None
    words = []
    for ln in m.group(1).split("\n"):
        words += re.sub(r"(^|\s)#.*$", "", ln).split()
    return set(words)


# -------------------------------------------------------------- TAP ----

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def case(self, ok, desc, notes=()):
        self.n += 1
        if not ok:
            self.failed += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {desc}")
        for note in notes:
            print(f"# {note}")


def where(places, limit=4):
    """file:line of the first use in each file, at most limit files."""
    first = {}
    for rel, line in places:
        first.setdefault(rel, line)
    s = ", ".join(f"{r}:{l}" for r, l in list(first.items())[:limit])
    if len(first) > limit:
        s += f" and {len(first) - limit} more files"
    return s


def self_test():
    """The extractors on a small sample of each form; returns what is wrong."""
    f = Found()
    scan_shell(f, "sample.sh", "\n".join([
        "PYBIN=/usr/bin/python3",
        "x=$(\"$PYBIN\" -c 'import alpha, sys; print(1)')",
        "check \"d\" \"$PYBIN\" -c \"",
        "import beta",
        "sys.exit(0 if ($expr) else 1)",
        "\" \"$@\"",
        "\"$PYBIN\" - \"$1\" <<'EOF'",
        "from gamma.sub import thing",
        "EOF",
        "cat <<EOF",
        "import notpython",
        "EOF",
        "python3 -m delta.tool --x",
        "# \"$PYBIN\" -c 'import commented'",
    ]))
    scan_python(f, "sample.py", "\n".join([
        "import os, epsilon.x",
        "def f():",
        "    from zeta import y",
        "    run_py('import eta; print(1)')",
        "    pytest.importorskip('theta')",
        "from . import rel",
    ]))
    got = {(m, line) for m, _, line, _ in f.imports}
    want = {("alpha", 2), ("sys", 2), ("beta", 4), ("gamma", 8), ("delta", 13),
            ("os", 1), ("epsilon", 1), ("zeta", 3), ("eta", 4), ("theta", 5)}
    problems = []
    if got != want:
        problems.append(f"missing {sorted(want - got)}, unexpected {sorted(got - want)}")
    if f.errors:
        problems.append(f"errors {f.errors}")
    return problems


def main():
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    tap = Tap()

    packages = setup_packages(repo)
    tap.case(packages is not None and len(packages) > 0,
             f"scripts/setup has a PACKAGES array ({len(packages or ())} packages)")
    packages = packages or set()

    problems = self_test()
    tap.case(not problems, "the extractors find imports in .py code, strings, heredocs, -c and -m",
             problems)

    found = scan_repo(repo)
    kinds = {}
    for mod, rel, line, kind in found.imports:
        kinds.setdefault((mod, rel, kind), line)
    missing = [f"{mod} in {rel} ({kind})" for mod, rel, kind in KNOWN
               if (mod, rel, kind) not in kinds]
    tap.case(not missing and found.files > 0,
             f"the scan finds the known imports ({found.files} files, "
             f"{len(found.imports)} imports): "
             + ", ".join(f"{m} in {r} ({k})" for m, r, k in KNOWN),
             [f"not found: {x} (if that file changed, pick another real import for KNOWN)"
              for x in missing])

    for rel, line, msg in found.errors:
        tap.case(False, f"{rel}:{line}: {msg}")

    stdlib = set(sys.stdlib_module_names)
    own = own_modules(repo)
    third = {}
    for mod, rel, line, _ in found.imports:
        if mod in stdlib or mod in own:
            continue
        places = third.setdefault(mod, [])
        if (rel, line) not in places:
            places.append((rel, line))
    for mod in sorted(third, key=str.lower):
        places = third[mod]
        pkg = MODULE_PACKAGES.get(mod)
        if pkg is None:
            tap.case(False, f"module {mod} (imported by {where(places)}) has no Debian package "
                     "in MODULE_PACKAGES of tests/check_packages.py: add it there, "
                     "and the package to scripts/setup")
        elif pkg not in packages:
            tap.case(False, f"module {mod} (imported by {where(places)}) needs Debian package "
                     f"{pkg}, which scripts/setup does not install")
        else:
            tap.case(True, f"module {mod} (imported by {where(places)}): {pkg} is in scripts/setup")

    for _, pkg, what in NEEDLES:
        places = found.needles.get(pkg)
        if not places:
            continue
        if pkg in packages:
            tap.case(True, f"{what} (used by {where(places, 3)}): {pkg} is in scripts/setup")
        else:
            tap.case(False, f"{what} (used by {where(places, 3)}) needs Debian package {pkg}, "
                     "which scripts/setup does not install")

    print(f"1..{tap.n}")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
