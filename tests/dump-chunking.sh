#!/bin/sh
# dcs-dump prints the same messages and errors whole, in 1-byte chunks and in
# odd-sized chunks, for every test stream; and its exit codes are as documented.
# TAP output.
set -u
dump=${DCS_DUMP:?run under meson test}
data=${DCS_TEST_DATA:?run under meson test}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }

for f in "$data"/streams/*.dcs; do
  name=$(basename "$f")
  "$dump" "$f" >"$tmp/w.out" 2>"$tmp/w.err"; wrc=$?
  for c in 1 7 4096; do
    "$dump" --chunk "$c" "$f" >"$tmp/c.out" 2>"$tmp/c.err"; crc=$?
    if cmp -s "$tmp/w.out" "$tmp/c.out" && cmp -s "$tmp/w.err" "$tmp/c.err" && [ $wrc = $crc ]; then
      ok "$name: --chunk $c matches whole reads"
    else
      notok "$name: --chunk $c differs from whole reads"
    fi
  done
  # standard input gives the same as a file argument
  "$dump" <"$f" >"$tmp/s.out" 2>/dev/null
  if cmp -s "$tmp/w.out" "$tmp/s.out"; then ok "$name: stdin"; else notok "$name: stdin"; fi
done

# exit status: 0 clean, 1 decoding error, 2 usage/IO
"$dump" "$data/streams/catalogue.dcs" >/dev/null 2>&1
[ $? = 0 ] && ok "exit 0 on a clean stream" || notok "exit 0 on a clean stream"
"$dump" "$data/streams/mixed-errors.dcs" >/dev/null 2>&1
[ $? = 1 ] && ok "exit 1 on decoding errors" || notok "exit 1 on decoding errors"
"$dump" --chunk 0 "$data/streams/catalogue.dcs" >/dev/null 2>&1
[ $? = 2 ] && ok "exit 2 on a bad option value" || notok "exit 2 on a bad option value"
"$dump" "$tmp/does-not-exist" >/dev/null 2>&1
[ $? = 2 ] && ok "exit 2 on a missing file" || notok "exit 2 on a missing file"
"$dump" --help | grep -q "usage: dcs-dump" && ok "--help" || notok "--help"
"$dump" --version | grep -q "^dcs-dump [0-9]" && ok "--version" || notok "--version"
printf '{"origin":"o","destination":"d","type":"t","key":"k"}\n{"a":' | "$dump" >/dev/null 2>"$tmp/e"
grep -qx 'error: truncated at byte 59: the stream ended inside a message that began at byte 54' "$tmp/e" \
  && ok "error line format" || notok "error line format: $(cat "$tmp/e")"
"$dump" --stats "$data/streams/mixed-errors.dcs" 2>&1 >/dev/null | tail -n 1 | grep -q '"errors":10,' \
  && ok "--stats counts every error" || notok "--stats counts every error"
echo "1..$n"
exit $fail
