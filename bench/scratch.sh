# Sourced first by the bench's scripts: a scratch directory $work (prefix $scratch_prefix) and
# a `pids` array, both cleaned up on exit: every process started goes into `pids`.
work=$(mktemp -d "/tmp/${scratch_prefix:-hw-bench}.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
