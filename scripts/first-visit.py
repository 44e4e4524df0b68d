#!/usr/bin/env python3
"""What a first visit downloads (brotli, as served), landing on each page of a `--split` build.

Usage: first-visit.py PKG_DIR. The landing page `/` needs the CSS, the JS and the main wasm; a
page that is a lazy route also needs its split module and the shared chunks the manifest that
cargo-leptos writes lists for it (the split loader fetches them; they are not in the HTML).
"""
import glob, json, os, sys

BUDGET = 300_000
pkg = sys.argv[1]
size = lambda pattern: sum(os.path.getsize(f) for f in glob.glob(os.path.join(pkg, pattern)))
# The JS imports the split loader (`__wasm_split.*.js`), so a first visit downloads it too.
css = size("switchyard.*.css.br")
js = size("switchyard.*.js.br") + size("__wasm_split.*.js.br")
main = size("switchyard.*.wasm.br")
# A debug build has no precompressed files: every figure would read 0 and pass.
if not (css and js and main):
    sys.exit(f"{pkg}: no precompressed (.br) CSS, JS and wasm; build with --release --precompress --split")
base = css + js + main
print(f"first visit to / (compressed): css {css} B + js {js} B + wasm {main} B = {base / 1024:.0f} KiB")
manifest = json.load(open(glob.glob(os.path.join(pkg, "__wasm_split_manifest.*.json"))[0]))
print("landing on a lazily loaded page (also its split module + shared chunks):")
over = 0
for route, chunks in sorted(manifest.items()):
    own = size(f"split_{route}.*.wasm.br")
    shared = sum(size(c + ".wasm.br") for c in chunks)
    name = route.strip("_").rsplit("_", 1)[0].replace("_route_view", "")
    total = base + own + shared
    over += total > BUDGET
    print(f"  {name:22} {total / 1024:6.0f} KiB  ({own} B page + {shared} B in {len(chunks)} shared chunks)"
          f"  {'ok' if total <= BUDGET else 'OVER 300 KB'}")
print(f"{over} of {len(manifest)} over {BUDGET} B")
