# sanitized.sh - sourced by the shell tests: `sanitized BINARY` succeeds when BINARY was built
# with a sanitizer (ASan, TSan, MSan, UBSan). Such builds run 10-30x slower, so the long tests
# run shorter there (each says so in a line of its output); the release build runs the full
# lengths. CI's sanitizer suite then stays well inside its timeout on a busy machine too.
sanitized() {
    grep -aq -e __asan_init -e __tsan_init -e __msan_init -e __ubsan_handle "$1"
}
