# Shared by the bench/compare-* scripts: building a baseline, starting hubs, reading their CPU,
# reading `wshub bench --json` reports, medians. Source it after `set -euo pipefail` and `cd` to
# the repository root; it sets the EXIT trap that stops every hub started with `start` and
# removes the scratch folder. The load generator is always the working tree's `wshub bench`,
# whichever hub it measures.

work=$(mktemp -d)
pids=""
base_worktree=""
cleanup() {
  [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
  [ -n "$base_worktree" ] && git worktree remove --force "$base_worktree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

secret=compare-bench-secret-compare-bench
generous=(--set rate_limits.default.capacity=1000000000 --set rate_limits.default.refill_per_sec=1000000000)
# pin_probe pins the load generator (`wshub bench`).
pin_server=() pin_probe=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server=(taskset -c 0) pin_probe=(taskset -c 1); fi

# Builds REV in a temporary worktree; the binary is in $base_bin. Builds are kept under
# target/bench-baseline/<commit>, so comparing against the same revision again is quick.
build_baseline() {
  local commit
  commit=$(git rev-parse --verify "$1^{commit}")
  base_bin="target/bench-baseline/$commit/release/wshub"
  [ -x "$base_bin" ] && return
  base_worktree="$work/base"
  git worktree add -q --detach "$base_worktree" "$commit"
  (cd "$base_worktree" && CARGO_TARGET_DIR="$OLDPWD/target/bench-baseline/$commit" cargo build -q --release -p wshub)
}

# Builds the working tree's hub, which is also the load generator (release); sets $current_bin,
# $token (an admin token the hubs started with `start` accept).
build_current() {
  cargo build -q --release -p wshub --bin wshub
  current_bin=${CARGO_TARGET_DIR:-target}/release/wshub
  token=$(WSHUB_AUTH__JWT__HS256_SECRET=$secret "$current_bin" token --role admin --sub bench --ttl 1h)
}

# Runs `wshub bench ARGS... --json` pinned like the generator; prints the report (one line).
bench() { "${pin_probe[@]}" "$current_bin" bench "$@" --json 2>/dev/null; }

# The value of the first field NAME in a one-line JSON report (`null` when it has none).
field() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -1 | cut -d: -f2; }

# Starts a hub in this shell (not a subshell, so its pid reaches the trap) pinned like the
# other hubs, and waits for its listening line. Usage: start NAME BIN [ARGS...]; sets $addr
# (empty if it did not start) and $pid.
start() {
  local name=$1 bin=$2
  shift 2
  WSHUB_AUTH__JWT__HS256_SECRET=$secret "${pin_server[@]}" "$bin" serve --port 0 "$@" >"$work/$name.out" 2>/dev/null &
  pid=$!
  pids="$pids $pid"
  for _ in $(seq 100); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  addr=$(grep -o '127.0.0.1:[0-9]*' "$work/$name.out" | head -1 || true)
}

# CPU time (user + system) a process has used, in clock ticks (1/100 s on Linux).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }
