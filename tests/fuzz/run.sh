#!/bin/sh
# Build the request-parser fuzzer with clang (libFuzzer + ASan + UBSan) and
# run it on a copy of the seed corpus.  Usage: tests/fuzz/run.sh [seconds]
# (default 300).  Exits non-zero if the fuzzer found a crash; the crashing
# input is left in the work directory it prints.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-300}
work=$(mktemp -d "${TMPDIR:-/tmp}/braid-fuzz.XXXXXX")
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$top/examples/httpd" -o "$work/fuzz_http" \
    "$top/tests/fuzz/fuzz_http.c" "$top/examples/httpd/http_parse.c"
mkdir -p "$work/corpus"
cp "$top"/tests/fuzz/corpus/* "$work/corpus/"
echo "fuzzing for ${secs}s in $work"
cd "$work"
nice ./fuzz_http -max_total_time="$secs" -max_len=12000 -timeout=10 \
    -print_final_stats=1 corpus
