#!/bin/sh
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of everything that parses
# hostile input. See doc/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (default: all of them, 60 s each) one after the other,
# one fuzzing process at a time, keeping its corpus in fuzz/corpus/TARGET
# and crashes in fuzz/artifacts/TARGET. Ends with one line per target:
#
#   target  executions  findings  exec/s
#
# executions is libFuzzer's stat::number_of_executed_units for this run;
# findings counts the files in fuzz/artifacts/TARGET (earlier runs'
# included). Exits 1 when a target crashed in this run, 2 on a usage or
# build error (cargo fuzz run rebuilds a target whose sources changed).
#
# Targets over code with `unsafe` below them (wire: etherparse's slices;
# engine: the attempt table's hints) run under AddressSanitizer; the parsers
# of text (config, config_shaped, onetime, journal, doors) are safe Rust all the way down,
# where ASan finds nothing and costs 3-4x the executions, so they run
# without it. Debug assertions and overflow checks are on for all.
#
# Environment:
#   FUZZ_ARGS          more libFuzzer flags, e.g. FUZZ_ARGS=-runs=10000000
#                      (the run ends at whichever limit comes first)
#   FUZZ_SANITIZER     one sanitizer for every target (address, none, ...)
#   KNOCKD_FUZZ_KNOWN  known findings to pass over (doc/fuzzing.md)
#   CARGO_BUILD_JOBS   compile jobs for the build (default 1: shared machine)
set -eu

cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-60}
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
[ $# -gt 0 ] && shift

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo +nightly install cargo-fuzz || {
        echo "fuzz.sh: cannot install cargo-fuzz (is the nightly toolchain installed? rustup toolchain install nightly)" >&2
        exit 2
    }
fi

all=$(cd fuzz && cargo +nightly fuzz list)
if [ $# -eq 0 ]; then
    set -- $all
fi
for t in "$@"; do
    case " $(echo $all) " in
    *" $t "*) ;;
    *)
        echo "fuzz.sh: no target '$t' (targets: $(echo $all))" >&2
        exit 2
        ;;
    esac
done

sanitizer() {
    if [ -n "${FUZZ_SANITIZER:-}" ]; then
        echo "$FUZZ_SANITIZER"
        return
    fi
    case $1 in
    config | config_shaped | onetime | engine | journal | doors) echo none ;;
    *) echo address ;;
    esac
}

# One target directory per sanitizer, so switching never rebuilds.
target_dir() {
    echo "$root/fuzz/target/sanitizer-$(sanitizer "$1")"
}

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
for t in "$@"; do
    echo "fuzz.sh: building $t (sanitizer $(sanitizer "$t"), CARGO_BUILD_JOBS=$CARGO_BUILD_JOBS)" >&2
    (cd fuzz && cargo +nightly fuzz build -s "$(sanitizer "$t")" \
        --target-dir "$(target_dir "$t")" "$t") || exit 2
done

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
table=""
crashed=0
broken=0
for t in "$@"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
    status=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    (cd fuzz && cargo +nightly fuzz run --jobs 1 -s "$(sanitizer "$t")" \
        --target-dir "$(target_dir "$t")" "$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-}) \
        >"$log" 2>&1 || status=$?
    tail -n 3 "$log" >&2
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    findings=$(find "fuzz/artifacts/$t" -type f | wc -l)
    if grep -q '^Error: failed to build' "$log"; then
        # cargo fuzz run rebuilds first: the sources changed and broke.
        broken=1
        execs=build-failed
        echo "fuzz.sh: $t did not build; see $log" >&2
    elif [ "$status" -ne 0 ]; then
        crashed=1
        echo "fuzz.sh: $t CRASHED (exit $status); see $log and fuzz/artifacts/$t" >&2
    fi
    table="$table$(printf '%-14s %12s %8s %8s' "$t" "${execs:-?}" "$findings" "${rate:-?}")
"
done

printf '%-14s %12s %8s %8s\n' target executions findings exec/s
printf '%s' "$table"
[ "$broken" -eq 1 ] && exit 2
exit $crashed
