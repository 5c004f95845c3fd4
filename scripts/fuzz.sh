#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time, one after another, and print a
# summary table (target, seconds, executions, corpus size, crashes).
#
#   scripts/fuzz.sh                       # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=300 scripts/fuzz.sh sse eventstream
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_MAX_LEN    largest input in bytes (default 8192)
#   FUZZ_RSS_MB     memory limit per fuzzer process (default 2048)
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, sanitizer coverage); on a stable
# toolchain RUSTC_BOOTSTRAP=1 enables them. cargo-fuzz itself is installed into
# target/.tools/bin when it is not on PATH. Corpora grow in fuzz/corpus/<target>/ (not
# committed), seeds are read from fuzz/seeds/<target>/, crash inputs land in
# fuzz/artifacts/<target>/ and full logs in fuzz/logs/<target>.log.
#
# Exit status: 0 when no target crashed, 1 otherwise.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TOOLS="$ROOT/target/.tools"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-address}"
MAX_LEN="${FUZZ_MAX_LEN:-8192}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
ALL_TARGETS=(config request anthropic_request responses_request sse eventstream provider_response provider_stream)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz into $TOOLS"
    cargo install cargo-fuzz --locked --root "$TOOLS" || exit 1
fi

cd "$FUZZ" || exit 1
mkdir -p logs artifacts corpus

echo "== building the fuzz targets (sanitizer: $SANITIZER)"
if ! cargo fuzz build --sanitizer "$SANITIZER" 2>&1 | tail -n 3; then
    echo "build failed" >&2
    exit 1
fi

count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

summary="| target | seconds | execs | corpus | crashes |
|---|---:|---:|---:|---:|"
crashed=0
for t in "${TARGETS[@]}"; do
    corpus="corpus/$t"
    artifacts="artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    before=$(count_files "$artifacts")
    log="logs/$t.log"
    echo "== $t: ${SECONDS_EACH}s"
    start=$(date +%s)
    cargo fuzz run --sanitizer "$SANITIZER" "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb="$RSS_MB" -max_len="$MAX_LEN" \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
    [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    crashes=$(( $(count_files "$artifacts") - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="failed (exit $status)"; fi
    [ "$crashes" != 0 ] && crashed=1
    summary+="
| $t | $elapsed | ${execs:-?} | $(count_files "$corpus") | $crashes |"
    if [ "$crashes" != 0 ]; then
        echo "   !! $t: see $FUZZ/$log and $FUZZ/$artifacts/"
        grep -m 5 -E 'panicked|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY' "$log" | sed 's/^/   /'
    fi
done

echo
echo "$summary"
echo "$summary" >logs/summary.md
exit "$crashed"
