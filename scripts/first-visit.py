#!/usr/bin/env python3
"""What a first visit downloads (brotli, as served), landing on each page of a `--split` build.

Usage: first-visit.py PKG_DIR. The landing page `/` needs the CSS, the JS and the main wasm; a
page that is a lazy route also needs its split module and every chunk that module's loader waits
for. Those are read from the split loader itself (`__wasm_split.*.js`: one `makeLoad(url, deps)`
per module), because that is what the browser fetches. The manifest cargo-leptos writes beside it
is not: its hashed renaming is a plain text replacement, so `chunk_160` there reads
`chunk_16.<hash>0`, and some routes list their own module among their chunks (summing it twice).
"""
import glob, os, re, sys

BUDGET = 300_000
pkg = sys.argv[1]


def one(pattern):
    found = glob.glob(os.path.join(pkg, pattern))
    if len(found) != 1:
        sys.exit(f"{pkg}: expected one {pattern}, found {len(found)}; build with --release --precompress --split")
    return found[0]


br = lambda path: os.path.getsize(path + ".br")
# A debug build has no precompressed files: every figure would read 0 and pass.
try:
    css, js, main, loader = (one(p) for p in ("switchyard.*.css", "switchyard.*.js", "switchyard.*.wasm", "__wasm_split.*.js"))
    base = br(css) + br(js) + br(main) + br(loader)
except FileNotFoundError as missing:
    sys.exit(f"{pkg}: no precompressed (.br) {missing.filename}; build with --release --precompress --split")
print(f"first visit to / (compressed): css {br(css)} B + js {br(js) + br(loader)} B (with the split loader)"
      f" + wasm {br(main)} B = {base / 1024:.0f} KiB ({base} B)")

# `const __chunk_16 = makeLoad(new URL("./chunk_16.<hash>.wasm", …), [deps])` for shared chunks;
# `export const __wasm_split_load_<name> = wrapAsyncCb(makeLoad(…, [deps]))` for split modules.
LOAD = re.compile(r'const (\w+) = (?:wrapAsyncCb\()?makeLoad\(new URL\("\./([^"]+)", import\.meta\.url\), \[([^\]]*)\]')
modules = {m[1]: (m[2], [d.strip() for d in m[3].split(",") if d.strip()]) for m in LOAD.finditer(open(loader).read())}
if not modules:
    sys.exit(f"{loader}: no module loaders found; has the split loader's format changed?")


def needs(name, seen):
    """The files fetched to load module `name`: its own and, transitively, its dependencies'."""
    path, deps = modules[name]
    seen.add(path)
    for dep in deps:
        needs(dep, seen)
    return seen


print("landing on a lazily loaded page, its modules fetched one by one (as a page reached by a link fetches them;\n"
      "a landing fetches them in one pack instead, measured by scripts/first-visit.mjs):")
over = total_pages = 0
for name in sorted(n for n in modules if n.startswith("__wasm_split_load_")):
    files = needs(name, set())
    extra = sum(br(os.path.join(pkg, f)) for f in files)
    page = re.sub(r"_route_view_\d+$", "", name.removeprefix("__wasm_split_load_").strip("_"))
    total = base + extra
    total_pages += 1
    over += total > BUDGET
    print(f"  {page:22} {total / 1024:6.0f} KiB  ({extra} B in {len(files)} modules)"
          f"  {'ok' if total <= BUDGET else 'OVER 300 KB'}")
print(f"{over} of {total_pages} over {BUDGET} B")
