#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds, runs everything through ctest:
#   1. Release-ish build (gcc): unit, simulator, fixture, integration tests
#   2. ASan+UBSan build (gcc): the same suite under the sanitizers
#   3. clang build with libFuzzer: the decoder fuzz target for DYLIVE_FUZZ_SECONDS (default 60)
# Integration tests start their own redis-server, simulator and workers on free ports.
# DYLIVE_TEST_QUICK=1 runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=${DYLIVE_TEST_JOBS:-2}

echo "== build (gcc, RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${DYLIVE_TEST_QUICK:-0}" = 1 ]; then exit 0; fi

echo "== build (gcc, ASan+UBSan)"
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DDYLIVE_ASAN=ON -DDYLIVE_UBSAN=ON >/dev/null
cmake --build build-san -j"$jobs"
echo "== tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-san --output-on-failure -j"$jobs"

echo "== build (clang, libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDYLIVE_FUZZ=ON \
  -DDYLIVE_FUZZ_SECONDS="${DYLIVE_FUZZ_SECONDS:-60}" >/dev/null
cmake --build build-fuzz -j"$jobs"
echo "== fuzz"
ctest --test-dir build-fuzz --output-on-failure -L fuzz
