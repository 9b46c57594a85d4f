#!/usr/bin/env bash
# The C chat (demo/demo.c) and the Rust chat (`messenger chat`, scripted) against one tracker
# (a C-API tracker process): both join a total-order group, talk at the same time, and each
# sees every message of both, in the same order; the C chat lists groups and members, leaves,
# and both quit with their metrics.
#
#   demo_interop.sh TRACKER_BIN DEMO_BIN [MESSENGER_BIN]
#
# Without MESSENGER_BIN (or when it does not exist), a second demo.c instance stands in for
# the Rust chat. Waits poll the output files for the expected lines, with a deadline.
set -euo pipefail

tracker_bin=$1
demo_bin=$2
messenger_bin=${3:-}
patience=20
n=10

work=$(mktemp -d "${TMPDIR:-/tmp}/messenger-interop.XXXXXX")
# Keys and known trackers of this run only, never the home directory's.
export MESSENGER_STATE_DIR="$work/state" MESSENGER_CONFIG_DIR="$work/config"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.out "$work"/*.err; do
      echo "---- $(basename "$f")" >&2
      cat "$f" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "demo_interop: FAILED: $*" >&2
  exit 1
}

# wait_for FILE COUNT FIXED_PREFIX: until COUNT lines of FILE start with the prefix.
wait_for() {
  local file=$1 count=$2 prefix=$3 deadline=$((SECONDS + patience))
  while [ "$(awk -v p="$prefix" 'index($0, p) == 1 { n++ } END { print n + 0 }' "$file")" -lt "$count" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$(basename "$file"): no $count lines starting \"$prefix\" after ${patience}s"
    sleep 0.05
  done
}

# wait_exit PID NAME: until the process exits with status 0.
wait_exit() {
  local pid=$1 name=$2 deadline=$((SECONDS + patience))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$name did not exit"
    sleep 0.05
  done
  wait "$pid" || fail "$name exited with status $?"
}

# The tracker, on a free port.
mkfifo "$work/tracker.in"
"$tracker_bin" <"$work/tracker.in" >"$work/tracker.out" 2>"$work/tracker.err" &
pids+=($!)
tracker_pid=$!
exec 5>"$work/tracker.in"
wait_for "$work/tracker.out" 1 "tracker listening on "
addr=$(sed -n 's/^tracker listening on //p' "$work/tracker.out")

# The Rust chat (or a second C chat) as "rusty", the C chat as "cdemo".
mkfifo "$work/rusty.in" "$work/cdemo.in"
if [ -n "$messenger_bin" ] && [ -x "$messenger_bin" ]; then
  other="messenger chat"
  env -u RUST_LOG -u MESSENGER_FAULTS "$messenger_bin" chat --name rusty --tracker "$addr" \
    --host-tracker never <"$work/rusty.in" >"$work/rusty.out" 2>"$work/rusty.err" &
else
  other="a second demo.c (no messenger binary)"
  "$demo_bin" "$addr" rusty <"$work/rusty.in" >"$work/rusty.out" 2>"$work/rusty.err" &
fi
pids+=($!)
rusty_pid=$!
exec 4>"$work/rusty.in"
"$demo_bin" "$addr" cdemo <"$work/cdemo.in" >"$work/cdemo.out" 2>"$work/cdemo.err" &
pids+=($!)
cdemo_pid=$!
exec 3>"$work/cdemo.in"

echo '!j lobby total' >&4
wait_for "$work/rusty.out" 1 "* you joined lobby (total order)"
echo '!j lobby' >&3 # no order: the C chat joins the existing group with its order
wait_for "$work/cdemo.out" 1 "* you joined lobby (total order) with rusty"
wait_for "$work/rusty.out" 1 "* cdemo joined lobby"

for i in $(seq 1 "$n"); do
  echo "rusty-$i" >&4
  echo "cdemo-$i says hi" >&3
done
wait_for "$work/rusty.out" $((2 * n)) "in lobby "
wait_for "$work/cdemo.out" $((2 * n)) "in lobby "

grep '^in lobby ' "$work/rusty.out" >"$work/rusty.log"
grep '^in lobby ' "$work/cdemo.out" >"$work/cdemo.log"
[ "$(wc -l <"$work/rusty.log")" -eq $((2 * n)) ] || fail "rusty got duplicates"
cmp -s "$work/rusty.log" "$work/cdemo.log" ||
  fail "the two chats disagree on the order of lobby: $(diff "$work/rusty.log" "$work/cdemo.log")"
for i in $(seq 1 "$n"); do
  grep -qxF "in lobby rusty says:: rusty-$i" "$work/cdemo.log" || fail "cdemo missed rusty-$i"
  grep -qxF "in lobby cdemo says:: cdemo-$i says hi" "$work/rusty.log" || fail "rusty missed cdemo-$i"
done

# The C chat's answers to !g and !lm.
echo '!g' >&3
wait_for "$work/cdemo.out" 1 "  lobby (total order, 2 members, you write here)"
echo '!lm lobby' >&3
wait_for "$work/cdemo.out" 1 "members of lobby (total order):"
wait_for "$work/cdemo.out" 1 "  rusty 127.0.0.1:"
grep -qE '^  cdemo 127\.0\.0\.1:[0-9]+ \(you\)$' "$work/cdemo.out" || fail "cdemo not listed as (you)"

# The C chat leaves; the Rust chat sees it, and what it says next reaches no one else.
echo '!e lobby' >&3
wait_for "$work/cdemo.out" 1 "* you left lobby"
wait_for "$work/rusty.out" 1 "* cdemo left lobby"
echo "after cdemo left" >&4
wait_for "$work/rusty.out" 1 "in lobby rusty says:: after cdemo left"

# Both quit (the Rust chat at the end of its input) and print their metrics.
echo '!q' >&3
exec 3>&-
exec 4>&-
wait_exit "$cdemo_pid" cdemo
wait_exit "$rusty_pid" rusty
for who in cdemo rusty; do
  grep -qxF -- "-----Performance analytics -----" "$work/$who.out" || fail "$who printed no metrics"
  if grep -q '^error: ' "$work/$who.err"; then fail "$who reported errors"; fi
done
grep -qxF "Messages sent = $n / Messages received = $n / Total messages = $((2 * n))" \
  "$work/cdemo.out" || fail "cdemo's metrics are wrong"
grep -q "in lobby rusty says:: after cdemo left" "$work/cdemo.out" && fail "cdemo got a message after it left"

exec 5>&-
wait_exit "$tracker_pid" tracker
grep -q "^tracker: 0 clients" "$work/tracker.out" || fail "clients still connected at the end"
echo "demo_interop: ok (demo.c and $other exchanged $((2 * n)) messages in the same total order)"
