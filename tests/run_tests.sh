#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. install the Debian packages and build (setup.sh), warnings as errors
#   2. ctest on that build: unit, mpi (1, 2 and 4 ranks), golden, fuzz-corpus replay, slurm
#   3. an ASan+UBSan build (clang) running the suite again, less the label "long"
#   4. a ThreadSanitizer build (clang) running the threaded tests
#   5. the libFuzzer targets built and run briefly (clang)
#   6. a portable scalar build (-DLONGCTX_SIMD=OFF, -mno-avx on x86-64) running test_kernels
#   7. style gates: clang-format, MPI_COMM_WORLD only in *_main.c and tests/
# Settings (environment overrides):
set -euo pipefail
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
SKIP_APT=${SKIP_APT:-0}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
cd "$(dirname "$0")/.."
step() { printf '\n==== %s\n' "$*"; }

step "setup and release build"
SKIP_APT=$SKIP_APT BUILD_DIR=build CMAKE_ARGS="-DWERROR=ON" ./setup.sh

step "peers for the comparison tests (HF tokenizers, llama.cpp via npm; sentencepiece)"
if [ -x ../shared/tools/peers/install.sh ]; then
  ../shared/tools/peers/install.sh || echo "WARNING: peers did not install; their tests will SKIP"
else
  echo "no ../shared/tools/peers: the peer comparisons will SKIP"
fi

step "style gates"
fail=0
if git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>/dev/null; then
  echo "clang-format: clean"
else
  echo "clang-format: these files differ:"; git ls-files '*.c' '*.h' | while read -r f; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "  $f"; done; fail=1
fi
if git grep -l MPI_COMM_WORLD -- ':!*_main.c' ':!tests/' ':!*.md'; then
  echo "MPI_COMM_WORLD outside *_main.c and tests/ (above)"; fail=1
fi
[ $fail = 0 ]

step "sanitizer build (address,undefined)"
cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DSANITIZE=address,undefined -DWERROR=ON >/dev/null
cmake --build build-asan -j "$JOBS" >/dev/null
# labels long (tests/CMakeLists.txt: six suites of 20-60 s here) and slurm (a real Slurm, its
# daemons started by the test) run in the release build only
( cd build-asan && UBSAN_OPTIONS=print_stacktrace=1 ctest -j "$JOBS" --output-on-failure \
    --timeout 600 -LE "long|slurm" )

step "thread sanitizer build (the threaded tests, label threads)"
cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=thread \
  -DWERROR=ON >/dev/null
cmake --build build-tsan -j "$JOBS" >/dev/null
( cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest -L threads --output-on-failure --timeout 900 )

step "portable scalar build (-DLONGCTX_SIMD=OFF, no AVX): test_kernels"
no_avx=""; [ "$(uname -m)" = x86_64 ] && no_avx="-mno-avx"
cmake -S . -B build-scalar -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_SIMD=OFF \
  -DCMAKE_C_FLAGS="$no_avx" -DWERROR=ON >/dev/null
cmake --build build-scalar -j "$JOBS" --target test_kernels >/dev/null
( cd build-scalar && ctest -R '^test_kernels$' --output-on-failure )

step "fuzz targets (libFuzzer, ${FUZZ_SECONDS}s each): tests/fuzz/run_fuzz.sh"
tests/fuzz/run_fuzz.sh "$FUZZ_SECONDS"

step "full suite (release build)"
cd build && ctest -j "$JOBS" --output-on-failure --timeout 600
