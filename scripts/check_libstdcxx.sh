#!/usr/bin/env bash
# After every build: te_ext's extension must use the process's one C++ runtime.
#
# Fails (exit 1) if an extension module
#   * has no `NEEDED libstdc++.so` entry (readelf -d): libstdc++ was linked statically, or
#   * DEFINES libstdc++'s iostream/locale machinery (nm -C): std::ostream::_M_insert,
#     std::locale, std::num_put, std::codecvt, std::ios_base, ...
# Either means a private copy of libstdc++ inside the .so. Its locale facets are numbered
# by its own counter while std::num_put<char>::id binds (STB_GNU_UNIQUE) to the system
# copy that torch already numbered: every formatted error message (c10::str of a number)
# then loses its text (GCC 12) or crashes the process (GCC 13). See docs/building.md.
#
# Usage: scripts/check_libstdcxx.sh [extension.so ...]   (default: te_ext/_C*.so)
set -uo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check_libstdcxx: FAIL: $*" >&2; status=1; }

for tool in readelf nm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_libstdcxx: FAIL: '$tool' not found (install binutils); cannot check how libstdc++ was linked" >&2
    exit 1
  fi
done

if [ $# -eq 0 ]; then
  shopt -s nullglob
  set -- te_ext/_C*.so
  shopt -u nullglob
  if [ $# -eq 0 ]; then
    echo "check_libstdcxx: FAIL: no te_ext/_C*.so; build first" >&2
    exit 1
  fi
fi

status=0
# libstdc++'s formatting/locale internals; a dynamic link leaves all of these undefined (U).
pattern='std::(basic_ostream<[^>]*>|ostream)::_M_insert|std::locale::(locale|classic|_Impl|id::_M_id|_S_initialize)|std::(__cxx11::)?num_put<|std::num_get<|std::codecvt<|std::ios_base::(Init|_M_init|ios_base)|std::basic_ios<char'
for so in "$@"; do
  if [ ! -f "$so" ]; then fail "$so: no such file"; continue; fi
  if ! readelf -d "$so" | grep -Eq 'NEEDED.*\[libstdc\+\+\.so'; then
    fail "$so has no 'NEEDED libstdc++.so' (readelf -d): libstdc++ is linked statically.
  The compiler ($(${CXX:-c++} --version 2>/dev/null | head -1)) linked its own copy of the C++
  runtime into the extension; with torch's copy in the same process, formatted error messages
  are truncated or crash. Build with a compiler that links libstdc++ dynamically (setup.py adds
  -Wl,-Bdynamic -lstdc++; a toolchain that has only libstdc++.a cannot), e.g. CXX=/usr/bin/g++."
  fi
  defined=$(nm -C --defined-only "$so" 2>/dev/null | grep -E "$pattern" | head -5)
  if [ -n "$defined" ]; then
    fail "$so DEFINES libstdc++'s iostream/locale code (nm -C --defined-only), for example:
$defined
  A private copy of libstdc++ is inside the extension (see above); rebuild as described there."
  fi
  if [ $status -eq 0 ]; then
    echo "check_libstdcxx: OK: $so needs $(readelf -d "$so" | grep -Eo 'libstdc\+\+\.so[^]]*' | head -1) and defines none of its iostream/locale symbols"
  fi
done
exit $status
