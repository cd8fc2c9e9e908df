#!/bin/bash
# Benchmark (issue "Session filesystem"): upload and download of a 10 MB
# file through the API (PUT /fs/{path} with the raw bytes, GET
# /fs/_/download/{path}), next to nginx serving the same file statically,
# in the same run on the same cores. One curl at a time, ROUNDS times
# each; prints throughputs and the ratios, never asserts.
#
# A second reference is the floor of storing a file in a PostgreSQL row,
# as session files are: one INSERT of the same bytes (read by the server
# itself, pg_read_binary_file) into a bytea column stored like
# session_files.content, committed synchronously, ROUNDS times.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need curl python3
ROUNDS=${BENCH_ROUNDS:-10}
SIZE=${BENCH_FILE_BYTES:-10000000}
bench_start

HNS=$(curl -sf "$EVR_BASE_URL/api/v1/harnesses/base" -H "Authorization: Bearer $KEY" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
SES=$(curl -sf -X POST "$EVR_BASE_URL/api/v1/sessions" -H "Authorization: Bearer $KEY" \
	-H 'Content-Type: application/json' -d '{"harness_id":"'"$HNS"'","title":"bench fs"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
FILE=$BENCH_HOME/blob.bin
head -c "$SIZE" /dev/urandom >"$FILE"
cp "$FILE" "$EVR_HOME/www/blob.bin"
chmod 0644 "$EVR_HOME/www/blob.bin"
FS=$EVR_BASE_URL/api/v1/sessions/$SES/fs

# seconds of ROUNDS transfers (curl's own timing, summed)
timed() {
	local i
	for i in $(seq "$ROUNDS"); do
		curl -sf -o /dev/null -w '%{time_total}\n' "$@"
	done | python3 -c 'import sys; print(sum(float(x) for x in sys.stdin))'
}

echo "bench fs_transfer: $SIZE bytes, $ROUNDS sequential transfers each, 2 cores shared"
T_STATIC=$(timed "$EVR_BASE_URL/blob.bin")
T_UP=$(timed -X PUT -H "Authorization: Bearer $KEY" -H 'Content-Type: application/octet-stream' \
	--data-binary @"$FILE" "$FS/blob.bin")
T_DOWN=$(timed -H "Authorization: Bearer $KEY" "$FS/_/download/blob.bin")
curl -sf -H "Authorization: Bearer $KEY" "$FS/_/download/blob.bin" | cmp -s - "$FILE" ||
	{ echo "bench fs_transfer: the downloaded file differs" >&2; exit 1; }

# the PostgreSQL floor (as the superuser: pg_read_binary_file)
chmod 0755 "$BENCH_HOME"
chmod 0644 "$FILE"
bench_psql -c "CREATE TABLE bench_floor (b bytea); ALTER TABLE bench_floor ALTER COLUMN b SET STORAGE EXTERNAL"
for i in $(seq "$ROUNDS"); do
	printf '\\timing on\nINSERT INTO bench_floor SELECT pg_read_binary_file(%s);\n' "'$FILE'"
done | bench_psql -d "$EVR_DATABASE_URL user=postgres" -v ON_ERROR_STOP=1 >"$BENCH_HOME/floor.out" 2>&1 ||
	{ cat "$BENCH_HOME/floor.out" >&2; exit 1; }
T_PG=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$BENCH_HOME/floor.out" |
	python3 -c 'import sys; print(sum(float(x) for x in sys.stdin) / 1000)')

python3 - "$SIZE" "$ROUNDS" "$T_STATIC" "$T_UP" "$T_DOWN" "$T_PG" <<'PY'
import sys
size, rounds = int(sys.argv[1]), int(sys.argv[2])
ts, tu, td, tp = map(float, sys.argv[3:])
mb = lambda t: size * rounds / t / 1e6
print("  nginx static GET                %8.1f MB/s  (%.1f ms per file)" % (mb(ts), ts / rounds * 1000))
print("  API upload (PUT, raw bytes)     %8.1f MB/s  (%.1f ms per file)" % (mb(tu), tu / rounds * 1000))
print("  API download (_/download)       %8.1f MB/s  (%.1f ms per file)" % (mb(td), td / rounds * 1000))
print("    download = %.2f x nginx static, upload = %.2f x nginx static" % (ts / td, ts / tu))
print("  PostgreSQL storing the bytes    %8.1f MB/s  (%.1f ms per file: one INSERT, synchronous commit)" % (mb(tp), tp / rounds * 1000))
print("    upload = %.2f x that floor; the floor alone = %.2f x nginx static" % (tp / tu, ts / tp))
PY
mbs() { python3 -c "import sys; s, r, t = map(float, sys.argv[1:]); print(s * r / t / 1e6)" "$SIZE" "$ROUNDS" "$1"; }
ratio() { python3 -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "$1" "$2"; }
figure "nginx static GET, 10 MB" "$(mbs "$T_STATIC")" MB/s --better higher
figure "API upload, 10 MB" "$(mbs "$T_UP")" MB/s --better higher
figure "API download, 10 MB" "$(mbs "$T_DOWN")" MB/s --better higher
figure "API upload / nginx static" "$(ratio "$T_STATIC" "$T_UP")" x --kind ratio --target 0.25 \
	--reference "nginx static GET of the same file"
figure "API download / nginx static" "$(ratio "$T_STATIC" "$T_DOWN")" x --kind ratio \
	--reference "nginx static GET of the same file"
figure "PostgreSQL storing 10 MB (INSERT)" "$(mbs "$T_PG")" MB/s --better higher
figure "API upload / PostgreSQL storing the bytes" "$(ratio "$T_PG" "$T_UP")" x --kind ratio \
	--reference "one INSERT of the same bytes, same run"
