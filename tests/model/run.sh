#!/bin/sh
# Model-check the scheduler's park/unpark protocol (park.pml), the
# channel / select / waiter protocol (chan.pml) and the two asymmetric
# Dekker protocols under x86-TSO (asym.pml: the next slot, the solo
# waiter's claim) with spin.
#
# Every configuration must verify with no error; every deliberately broken
# variant (-DBUG_*) must produce a counterexample, which shows that the
# model and its properties can fail at all.  One line per run, then
# "N passed, N failed".  Exit 0 when all passed, 1 otherwise, 77 (skipped)
# when spin or a C compiler is missing.
#
# Usage: tests/model/run.sh            (about a minute on 2 cores)
#        MODEL_FULL=1 tests/model/run.sh   (adds a 3-worker run with both
#                                           producers: ~1 min, ~2 GB more)
# Env: CC (default gcc), MODEL_KEEP=1 keeps the work directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-gcc}

if ! command -v spin >/dev/null 2>&1; then
    echo "spin not found (Debian package: spin): model checks skipped"
    exit 77
fi
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "$cc not found: model checks skipped"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/braid-model.XXXXXX") || exit 1
passed=0
failed=0
keep=${MODEL_KEEP:-0}

now() { date +%s.%N; }

# check NAME EXPECT MODEL SPINDEFS PANDEFS PANARGS
#   EXPECT: ok (must verify) or fail (must produce a counterexample).
check() {
    name=$1 expect=$2 model=$3 sdefs=$4 pdefs=$5 pargs=$6
    dir=$work/$(echo "$name" | tr -c 'A-Za-z0-9_\n-' '_')
    mkdir -p "$dir"
    cp "$here/$model" "$dir/"
    echo "spin -t -p $sdefs $model" >"$dir/replay"
    t0=$(now)
    if ! (cd "$dir" && spin $sdefs -a "$model" >spin.log 2>&1); then
        echo "FAIL $name: spin -a failed (see $dir/spin.log)"
        failed=$((failed + 1)); keep=1; return
    fi
    if ! (cd "$dir" && $cc -w -O2 $pdefs -o pan pan.c >cc.log 2>&1); then
        echo "FAIL $name: compiling pan failed (see $dir/cc.log)"
        failed=$((failed + 1)); keep=1; return
    fi
    (cd "$dir" && nice ./pan $pargs >pan.log 2>&1)
    t1=$(now)
    secs=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$dir/pan.log" | tail -n 1)
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log" | tail -n 1)
    incomplete=$(grep -E 'max search depth too small|out of memory|MEMLIM|VECTORSZ' \
                 "$dir/pan.log" | head -n 1)
    [ -n "$errors" ] || errors=unknown
    [ -n "$states" ] || states=unknown
    what=$(grep -m 1 -E 'assertion violated|acceptance cycle|invalid end state' \
           "$dir/pan.log" | sed 's/^pan:[0-9]*: *//' | cut -c 1-70)
    line="$name: $states states, $errors errors, ${secs}s"
    if [ "$expect" = ok ]; then
        if [ "$errors" = 0 ] && [ -z "$incomplete" ]; then
            echo "PASS $line"
            passed=$((passed + 1))
        else
            echo "FAIL $line ${incomplete:-$what} (trail: $dir)"
            failed=$((failed + 1)); keep=1
        fi
    else
        if [ "$errors" != 0 ] && [ "$errors" != unknown ]; then
            echo "PASS $line (counterexample as expected: $what)"
            passed=$((passed + 1))
        else
            echo "FAIL $line: the broken variant was NOT caught"
            failed=$((failed + 1)); keep=1
        fi
    fi
}

# Safety runs: assertions and invalid end states; no never claim.
SAFE="-DSAFETY -DNOCLAIM -DCOLLAPSE -DVECTORSZ=2048 -DMEMLIM=3072"
# Liveness runs: acceptance cycles of the LTL claim under weak fairness.
LIVE="-DNFAIR=3 -DCOLLAPSE -DVECTORSZ=2048 -DMEMLIM=3072"

# ---- park.pml: runtime/sched.c ----
check "park 2 workers, both producers" ok park.pml \
    "-DNW=2 -DSPAWN=2 -DFOREIGN=2 -DYIELDS=1" "$SAFE" "-m200000 -w26"
check "park 3 workers, worker-side producer" ok park.pml \
    "-DNW=3 -DSPAWN=2 -DFOREIGN=0 -DYIELDS=0" "$SAFE" "-m200000 -w26"
check "park 3 workers, foreign producer" ok park.pml \
    "-DNW=3 -DSPAWN=0 -DFOREIGN=1 -DYIELDS=0" "$SAFE" "-m200000 -w26"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    check "park 3 workers, both producers" ok park.pml \
        "-DNW=3 -DSPAWN=1 -DFOREIGN=1 -DYIELDS=0" "$SAFE" "-m200000 -w26"
fi
check "park 2 workers, liveness <>[]quiet (weak fairness)" ok park.pml \
    "-DNW=2 -DSPAWN=2 -DFOREIGN=1 -DYIELDS=0" "$LIVE" "-m200000 -w26 -a -f -N done"
check "park broken: no re-check after idle_push" fail park.pml \
    "-DNW=2 -DBUG_NO_RECHECK" "$SAFE" "-m200000 -w24"
check "park broken: gq_take share off by one (livelock)" fail park.pml \
    "-DNW=2 -DSPAWN=2 -DFOREIGN=1 -DYIELDS=0 -DBUG_GQ_SHARE" "$LIVE" \
    "-m200000 -w24 -a -f -N done"
check "park broken: stop spinning after idle_push" fail park.pml \
    "-DNW=2 -DBUG_LATE_UNSPIN" "$SAFE" "-m200000 -w24"
check "park broken: woken spinner runs local work still spinning" fail park.pml \
    "-DNW=2 -DBUG_RUN_SPINNING" "$SAFE" "-m200000 -w24"

# ---- chan.pml: sync/chan.c, sync/select.c, runtime/waiter.c ----
check "chan select recv/recv" ok chan.pml "" "$SAFE" "-m100000 -w26"
check "chan select send/recv" ok chan.pml "-DSEL_MIXED" "$SAFE" "-m100000 -w26"
check "chan broken: evict wakes without claiming" fail chan.pml \
    "-DBUG_WAKE_NO_CLAIM" "$SAFE" "-m100000 -w24"
check "chan broken: select evict wakes without claiming" fail chan.pml \
    "-DSEL_MIXED -DBUG_WAKE_NO_CLAIM" "$SAFE" "-m100000 -w24"
check "chan broken: no unlink after timeout/cancel" fail chan.pml \
    "-DBUG_NO_UNLINK" "$SAFE" "-m100000 -w24"

# ---- asym.pml: runtime/sched.c next slot, runtime/waiter.h solo claim,
# runtime/waiter.c solo park (parked_solo) ----
check "asym next slot, 1 thief (TSO)" ok asym.pml \
    "-DNEXT_SLOT -DTHIEVES=1 -DOPS=4 -DSTEALS=3 -DBUFD=4" "$SAFE" "-m200000 -w24"
check "asym next slot, 2 thieves (TSO)" ok asym.pml \
    "-DNEXT_SLOT -DTHIEVES=2 -DOPS=4 -DSTEALS=2 -DBUFD=4" "$SAFE" "-m200000 -w24"
check "asym solo claim, 2 parties, 2 cancellers (TSO)" ok asym.pml \
    "-DSOLO_CLAIM -DPARTIES=2 -DCANCELLERS=2 -DBUFD=4" "$SAFE" "-m200000 -w24"
check "asym solo park, party and 1 canceller (TSO)" ok asym.pml \
    "-DSOLO_PARK -DCANCELLERS=1 -DBUFD=4" "$SAFE" "-m200000 -w24"
check "asym solo park, party and 2 cancellers (TSO)" ok asym.pml \
    "-DSOLO_PARK -DCANCELLERS=2 -DBUFD=3" "$SAFE" "-m200000 -w24"
check "asym broken: parker unlocks ch->lock before parking" fail asym.pml \
    "-DSOLO_PARK -DBUG_NO_HELD" "$SAFE" "-m200000 -w22"
check "asym broken: canceller wakes after unlocking lk" fail asym.pml \
    "-DSOLO_PARK -DBUG_WAKE_UNLOCKED" "$SAFE" "-m200000 -w22"
check "asym broken: thief without membarrier" fail asym.pml \
    "-DNEXT_SLOT -DBUG_NO_HEAVY" "$SAFE" "-m200000 -w22"
check "asym broken: thief ignores busy" fail asym.pml \
    "-DNEXT_SLOT -DBUG_NO_WAIT" "$SAFE" "-m200000 -w22"
check "asym broken: canceller without membarrier" fail asym.pml \
    "-DSOLO_CLAIM -DBUG_NO_HEAVY" "$SAFE" "-m200000 -w22"
check "asym broken: canceller does not wait out claiming" fail asym.pml \
    "-DSOLO_CLAIM -DBUG_NO_WAIT" "$SAFE" "-m200000 -w22"

if [ "$keep" = 1 ]; then
    echo "work directory kept: $work (each run's DIR/replay replays its trail)"
else
    rm -rf "$work"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
