#!/usr/bin/env bash
# Installs the C library: PREFIX/include/etch.h, PREFIX/lib/libetch.{so,a} and
# PREFIX/lib/pkgconfig/etch.pc (from etch.pc.in). Build first:
#   cargo build --release -p etch-ffi
#   ffi/install.sh /usr/local          # then: cc app.c $(pkg-config --cflags --libs etch)
# Options: TARGET_DIR (default: <repo>/target/release).
set -euo pipefail
prefix=${1:?usage: ffi/install.sh PREFIX}
here=$(cd "$(dirname "$0")" && pwd)
target=${TARGET_DIR:-$here/../target/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../Cargo.toml" | head -n1)
for lib in libetch.so libetch.a; do
    [ -f "$target/$lib" ] || { echo "missing $target/$lib: run cargo build --release -p etch-ffi" >&2; exit 1; }
done
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 "$here/include/etch.h" "$prefix/include/etch.h"
install -m 0755 "$target/libetch.so" "$prefix/lib/libetch.so"
install -m 0644 "$target/libetch.a" "$prefix/lib/libetch.a"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/etch.pc.in" \
    > "$prefix/lib/pkgconfig/etch.pc"
echo "installed etch $version C library into $prefix"
