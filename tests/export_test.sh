#!/usr/bin/env bash
# export_test.sh — end-to-end tests of `ibstore pack --from tar|jsonl`,
# `--jobs` determinism and `ibstore export`: round trips for each source
# (tar in ustar, GNU and pax formats, written by Python's tarfile and by GNU
# tar; JSONL with and without --field), malformed archives and lines,
# duplicate keys, empty inputs, byte-identical shards for --jobs 1/2/3, and
# pack → export → pack --from folder → export giving identical trees.
# Prints TAP.
#
# usage: export_test.sh PATH/TO/ibstore
set -u

IB=${1:?usage: export_test.sh PATH/TO/ibstore}
PY=/usr/bin/python3

. "$(dirname "$0")/tap.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/ibstore-export-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

# err_has DESCRIPTION TEXT: the last command's stderr contains TEXT.
err_has() {
	if grep -qF -- "$2" "$T/err"; then ok "$1"; else
		not_ok "$1" "stderr lacks '$2'" "stderr: $(head -c 600 "$T/err")"
	fi
}
absent() { if [ ! -e "$2" ]; then ok "$1"; else not_ok "$1" "$2 exists"; fi; }
json() { "$PY" -c 'import json,sys; v=json.load(sys.stdin); print(v[sys.argv[1]])' "$1"; }

# ---- inputs ----------------------------------------------------------------
# mktar FILE FORMAT SPEC: SPEC is a Python list of (name, bytes) members.
mktar() {
	"$PY" - "$@" <<'EOF'
import io, sys, tarfile
path, fmt, spec = sys.argv[1], sys.argv[2], sys.argv[3]
fmts = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
with tarfile.open(path, "w", format=fmts[fmt]) as t:
    for name, data in eval(spec):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
EOF
}

# A WebDataset-like tree: 40 samples, deterministic pseudo-random payloads.
"$PY" - <<'EOF'
import os, random
r = random.Random(7)
os.makedirs("wds/part0", exist_ok=True)
for i in range(40):
    stem = "wds/part0/%06d" % i
    open(stem + ".jpg", "wb").write(bytes(r.getrandbits(8) for _ in range(100 + 37 * i)))
    open(stem + ".cls", "w").write("%d\n" % (i % 4))
    open(stem + ".json", "w").write('{"i": %d}' % i)
EOF
# GNU tar keeps the directory order unless told to sort.
for fmt in ustar gnu pax; do
	tar --format=$fmt --sort=name -cf gnutar-$fmt.tar wds
done

# ---- tar: formats ------------------------------------------------------------
for fmt in ustar gnu pax; do
	run 0 "pack --from tar reads a GNU tar --format=$fmt archive" pack -q --from tar gnutar-$fmt.tar tar-$fmt.ibs
done
run 0 "the 40 samples are there" info --json tar-pax.ibs
check "40 samples with 4 labels" test "$(json samples <out)/$(json labels <out)" = "40/4"
check "the payload extension is recorded as attribute ext" test "$(json ext <"$T/out")" = jpg
run 0 "get by the stem key" get tar-ustar.ibs --key wds/part0/000017 -o got.jpg
check "the payload's bytes come back" cmp -s got.jpg wds/part0/000017.jpg
run 0 "get --json of a tar sample" get --json tar-gnu.ibs --key wds/part0/000017
check "its label is the .cls text" test "$(json label <"$T/out")" = 1
check "ustar, GNU and pax archives pack to the same records" \
	cmp -s -i 64 tar-ustar.ibs/shard-000000.ibr tar-pax.ibs/shard-000000.ibr

long=$(printf 'd%.0s' {1..150})
mktar long-gnu.tar gnu "[('$long/000001.png', b'one'), ('$long/000001.cls', b'3'), ('$long/000002.png', b'two')]"
run 0 "GNU long names (over 100 bytes)" pack -q --from tar long-gnu.tar long-gnu.ibs
run 0 "a long-named sample is found by its stem" get long-gnu.ibs --key "$long/000001"
check "and holds its payload" test "$(cat "$T/out")" = one
mktar long-pax.tar pax "[('$long/é-000001.png', b'one'), ('$long/é-000001.cls', b' 7 '), ('x/00.png', b'')]"
run 0 "pax path records (long, non-ASCII names)" pack -q --from tar long-pax.tar long-pax.ibs
run 0 "a pax-named sample is found by its stem" get --json long-pax.ibs --key "$long/é-000001"
check "with its label" test "$(json label <"$T/out")" = 7

mktar mixed.tar ustar "[('a.jpg', b'A'), ('b.png', b'B'), ('b.jpg', b'Bj'), ('c.webp', b'C')]"
run 0 "mixed payload extensions" pack -q --from tar mixed.tar mixed.ibs
run 0 "a sample with the first sample's extension is keyed by its stem" get mixed.ibs --key a
run 0 "the best extension of the list wins (jpg before png)" get mixed.ibs --key b
check "b's payload is b.jpg" test "$(cat "$T/out")" = Bj
run 0 "another extension is kept in the key" get mixed.ibs --key c.webp
run 0 "--payload chooses the extension" pack -q --from tar --payload png,jpg,webp mixed.tar mixed2.ibs
run 0 "get b from the png-first dataset" get mixed2.ibs --key b.png
check "b's payload is now b.png" test "$(cat "$T/out")" = B
mktar lbl.tar ustar "[('s1.txt', b'x'), ('s1.label', b'5')]"
run 0 "--label-ext" pack -q --from tar --label-ext label lbl.tar lbl.ibs
run 0 "get --json s1" get --json lbl.ibs --key s1
check "label from the .label member" test "$(json label <"$T/out")" = 5

# ---- tar: malformed ------------------------------------------------------------
cp gnutar-ustar.tar badsum.tar
printf 'X' | dd of=badsum.tar bs=1 seek=$((512 * 2 + 10)) conv=notrunc status=none
run 1 "a header checksum mismatch fails" pack -q --from tar badsum.tar badsum.ibs
err_has "the message says checksum and names the offset" "offset 1024: header checksum mismatch"
absent "nothing is left at the output" badsum.ibs
mktar trunc.tar ustar "[('a.jpg', b'x' * 3000), ('a.cls', b'1')]"
head -c 2000 trunc.tar >trunc2.tar
run 1 "a truncated member fails" pack -q --from tar trunc2.tar trunc.ibs
err_has "the message names the member, its offset and truncation" "member 'a.jpg' at offset 0 is truncated"
absent "nothing is left at the output" trunc.ibs
mktar dotdot.tar ustar "[('ok.jpg', b'1'), ('../evil.jpg', b'2')]"
run 1 "a path with '..' fails" pack -q --from tar dotdot.tar dotdot.ibs
err_has "the message names the member" "member '../evil.jpg' at offset 1024: path with a '..' component"
mktar abs.tar gnu "[('/etc/x.jpg', b'2')]"
run 1 "an absolute path fails" pack -q --from tar abs.tar abs.ibs
err_has "the message says absolute" "absolute path"
mktar dup.tar ustar "[('a.jpg', b'1'), ('b.jpg', b'2'), ('a.jpg', b'3')]"
run 1 "a stem that comes back later is a duplicate key" pack -q --from tar dup.tar dup.ibs
err_has "the message names the key" "duplicate key 'a'"
run 1 "the same stem in two archives is a duplicate key" pack -q --from tar gnutar-ustar.tar gnutar-pax.tar dup2.ibs
err_has "the message names the second archive" "gnutar-pax.tar: sample 'wds/part0/000000'"
mktar nopay.tar ustar "[('a.jpg', b'1'), ('b.json', b'{}')]"
run 1 "a sample without a payload member fails" pack -q --from tar nopay.tar nopay.ibs
err_has "the message names the sample" "sample 'b' (member at offset 1024) has no payload member"
mktar badlabel.tar ustar "[('a.jpg', b'1'), ('a.cls', b'cat')]"
run 1 "a non-numeric label fails" pack -q --from tar badlabel.tar badlabel.ibs
err_has "the message names the label member" "member 'a.cls' at offset 1024: label 'cat'"
: >empty.tar
run 1 "an empty file has no samples" pack -q --from tar empty.tar empty.ibs
err_has "the message says so" "no samples found"
head -c 1024 /dev/zero >zeros.tar
run 1 "an archive of only end blocks has no samples" pack -q --from tar zeros.tar zeros.ibs
head -c 700 /dev/urandom >junk.tar
run 1 "a file that is not a tar fails" pack -q --from tar junk.tar junk.ibs

# ---- jsonl -----------------------------------------------------------------
printf '%s\n' '{"text": "hello\u00e9\n", "label": 3}' '' '{"label": -2, "text": "x", "meta": {"a": [1, 2.5e3, null, true]}}' \
	'{"text": {"nested": "obj"}, "label": null}' >a.jsonl
printf '%s\r\n' '{"text": "\ud83d\ude00", "label": 1}' >b.jsonl
run 0 "pack --from jsonl, whole lines" pack -q --from jsonl a.jsonl b.jsonl lines.ibs
run 0 "info of the lines dataset" info --json lines.ibs
check "4 samples (the blank line skipped)" test "$(json samples <"$T/out")" = 4
"$IB" get lines.ibs 1 >got 2>/dev/null
check "a sample is the line's bytes without the newline" test "$(cat got)" = "$(sed -n 3p a.jsonl)"
"$IB" get lines.ibs 3 >got 2>/dev/null
check "CRLF line ends are removed" cmp -s got <(printf '%s' '{"text": "\ud83d\ude00", "label": 1}')
run 0 "pack --from jsonl --field --label-field" pack -q --from jsonl --field text --label-field label --line-keys a.jsonl b.jsonl fields.ibs
"$IB" get fields.ibs 0 >got 2>/dev/null
check "a string field is its decoded UTF-8" cmp -s got <(printf 'hello\xc3\xa9\n')
"$IB" get fields.ibs 2 >got 2>/dev/null
check "another value is its JSON text" test "$(cat got)" = '{"nested": "obj"}'
"$IB" get fields.ibs 3 >got 2>/dev/null
check "surrogate pairs decode to one code point" cmp -s got <(printf '\xf0\x9f\x98\x80')
run 0 "labels from the label field" get --json fields.ibs --key a.jsonl:3
check "line 3's label is -2" test "$(json label <"$T/out")" = -2
run 0 "a null label" get --json fields.ibs 2
check "is no label" test "$(json label <"$T/out")" = None

printf '%s\n' '{"t": "ok"}' '{"t": "ok2"}' '{"t": "bad",}' '{"t": "ok3"}' '{"t": "\x01"}' 'nope' >bad.jsonl
run 1 "a malformed line fails" pack -q --from jsonl bad.jsonl bad.ibs
err_has "with the file, line and column" "bad.jsonl:3: column 13: malformed JSON"
absent "nothing is left at the output" bad.ibs
run 0 "--skip-bad skips and counts" pack --from jsonl --skip-bad --field t bad.jsonl skip.ibs
err_has "the count is printed" "skipped 3 bad lines"
err_has "each skipped line is named" "bad.jsonl:6: column 1: not a JSON object"
run 0 "info of the skip dataset" info --json skip.ibs
check "the three good lines are packed" test "$(json samples <"$T/out")" = 3
printf '%s\n' '{"t": 1}' >nofield.jsonl
run 1 "a missing field fails" pack -q --from jsonl --field text nofield.jsonl nofield.ibs
err_has "naming the field" "nofield.jsonl:1: no field \"text\""
printf '%s\n' '{"label": 1.5}' >badlabel.jsonl
run 1 "a non-integer label fails" pack -q --from jsonl --label-field label badlabel.jsonl bl.ibs
err_has "naming the label" "label field \"label\" is 1.5"
: >empty.jsonl
run 1 "an empty JSONL file has no samples" pack -q --from jsonl empty.jsonl ej.ibs
err_has "the message says so" "no samples found"
printf '%s\n' '{"a": 1}' '{"a": 1}' >dupk.jsonl
run 0 "identical lines are fine without keys" pack -q --from jsonl dupk.jsonl dupk.ibs
run 2 "--field applies only to jsonl" pack -q --from tar --field x mixed.tar x.ibs

# ---- --jobs: byte-identical output --------------------------------------------
"$PY" - <<'EOF'
import random
r = random.Random(3)
with open("big.jsonl", "w") as f:
    for i in range(3000):
        n = r.randrange(0, 3000)
        words = " ".join(r.choice(["alpha", "beta", "gamma", "delta", "%d" % i]) for _ in range(n // 6))
        f.write('{"text": "%s", "label": %d}\n' % (words, i % 10))
EOF
for j in 1 2 3; do
	run 0 "pack --jobs $j (lz4, small shards)" pack -q --jobs $j --compress lz4 --shard-size 256K --align 64 --from jsonl --field text --label-field label big.jsonl jobs$j.ibs
done
same_shards() {
	local a=$1 b=$2 f
	[ "$(ls "$a" | grep -c '^shard-')" -gt 1 ] || return 1
	for f in "$a"/shard-*.ibr; do
		cmp -s -i 64 "$f" "$b/$(basename "$f")" || return 1
	done
	[ "$(ls "$a" | grep -c '^shard-')" -eq "$(ls "$b" | grep -c '^shard-')" ]
}
check "--jobs 2 writes the same shards as --jobs 1 (after the header)" same_shards jobs1.ibs jobs2.ibs
check "--jobs 3 writes the same shards as --jobs 1" same_shards jobs1.ibs jobs3.ibs
meta() {
	local ds=$1 i
	"$IB" info --json "$ds" | "$PY" -c 'import json,sys; v=json.load(sys.stdin); [v.pop(k) for k in ("uuid","created","created_unix")]; print(json.dumps(v, sort_keys=True))'
	for ((i = 0; i < 3000; i += 97)); do "$IB" get --json "$ds" $i; echo; done
}
check "--jobs 1/2/3 give the same catalog (info and records' locations)" \
	test "$(meta jobs1.ibs)" = "$(meta jobs2.ibs)" -a "$(meta jobs1.ibs)" = "$(meta jobs3.ibs)"
run 0 "a --jobs 3 dataset verifies" verify jobs3.ibs
run 0 "tar with --jobs 2 and auto compression" pack -q --jobs 2 --compress auto --from tar gnutar-pax.tar tj2.ibs
run 0 "tar with --jobs 1 and auto compression" pack -q --jobs 1 --compress auto --from tar gnutar-pax.tar tj1.ibs
check "same shard bytes" cmp -s -i 64 tj1.ibs/shard-000000.ibr tj2.ibs/shard-000000.ibr
run 2 "--jobs 0 is refused" pack -q --jobs 0 --from tar mixed.tar j0.ibs

# ---- export -----------------------------------------------------------------
run 0 "export a tar dataset" export tar-pax.ibs exp1
check "files are DIR/<label>/<stem>.<ext>" cmp -s exp1/1/000017.jpg wds/part0/000017.jpg
check "every sample is exported" test "$(find exp1 -type f | wc -l)" -eq 40
run 0 "pack the export back as a folder" pack -q --jobs 2 --from folder exp1 back.ibs
run 0 "export it again" export back.ibs exp2
check "the second export is identical to the first (diff -r)" diff -r exp1 exp2
run 0 "export the mixed-extension dataset" export mixed.ibs expm
check "keys with an extension keep it, others get the recorded one" \
	test "$(cd expm && find . -type f | sort | tr '\n' ' ')" = "./unlabeled/a.jpg ./unlabeled/b.jpg ./unlabeled/c.webp "
run 0 "export a keyless JSONL dataset" export lines.ibs expl
check "keyless, unlabeled samples are named by id under unlabeled/" test -f expl/unlabeled/0 -a -f expl/unlabeled/3
run 0 "round trip of the JSONL export" pack -q --from folder expl backl.ibs
run 0 "export it again" export backl.ibs expl2
check "identical trees" diff -r expl expl2
mkdir full && touch full/x
run 1 "export refuses a non-empty directory" export tar-pax.ibs full
err_has "saying so" "is not empty"
run 1 "export of a missing dataset fails" export nowhere.ibs exp3
run 2 "export needs two arguments" export tar-pax.ibs
run 0 "export into an existing empty directory" export -q long-gnu.ibs "$(mkdir -p emptydir && echo emptydir)"
check "the long key's last component names the file" test -f emptydir/3/000001.png

tap_done
