#!/usr/bin/env bash
# tests/check_stress.sh - a short braid-stress pass for `make check`: every
# profile for 20 s in total, fixed seed.  Exits with the harness's status
# (1: an invariant broke, 3: the watchdog saw a hang) and prints its last
# line ("N passed, N failed").
#
# BRAID_TEST_WRAPPER (set by tools/vg-wrap, the LOG_COMPILER of `tools/dev
# valgrind`) is a command to run braid-stress under, so that valgrind checks
# the binary rather than this script's bash.  --seconds is wall time, so
# the run takes as long there, doing less work (a memcheck error makes it
# exit with 99).
set -u
bin="${builddir:-.}/tools/braid-stress"
out=$(mktemp "${TMPDIR:-/tmp}/check_stress.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT
${BRAID_TEST_WRAPPER:+"$BRAID_TEST_WRAPPER"} "$bin" --seconds 20 --profile all --seed 1 >"$out"
rc=$?
if [ "$rc" -eq 0 ]; then tail -n 1 "$out"; else cat "$out"; fi
exit "$rc"
