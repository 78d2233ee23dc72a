#!/usr/bin/env bash
# tests/check_stress.sh - a short braid-stress pass for `make check`: every
# profile for 20 s in total, fixed seed.  Exits with the harness's status
# (1: an invariant broke, 3: the watchdog saw a hang) and prints its last
# line ("N passed, N failed").
set -u
bin="${builddir:-.}/tools/braid-stress"
out=$(mktemp "${TMPDIR:-/tmp}/check_stress.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT
"$bin" --seconds 20 --profile all --seed 1 >"$out"
rc=$?
if [ "$rc" -eq 0 ]; then tail -n 1 "$out"; else cat "$out"; fi
exit "$rc"
