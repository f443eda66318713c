#!/usr/bin/env bash
# cli_test.sh — end-to-end tests of the `ibstore` command on real data
# (Fashion-MNIST): pack, info, get, verify, corruption detection, atomic
# publishing, folder keys, help and argument errors.  Prints TAP.
#
# usage: cli_test.sh PATH/TO/ibstore
# IBSTORE_TEST_DATA overrides the Fashion-MNIST directory.
set -u

IB=${1:?usage: cli_test.sh PATH/TO/ibstore}
DATA=${IBSTORE_TEST_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
IMG_SIZE=784
NSAMPLES=60000

if [ ! -r "$DATA/train-images-idx3-ubyte.gz" ] || [ ! -r "$DATA/train-labels-idx1-ubyte.gz" ]; then
	echo "1..0 # SKIP no Fashion-MNIST in $DATA"
	exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ibstore-cli-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/tap.sh"

# json_field KEY < JSON: prints the value ("null" for null), fails on bad JSON.
json_field() {
	"$PY" -c '
import json, sys
v = json.load(sys.stdin)
k = sys.argv[1]
if k not in v:
    sys.exit("missing key " + k)
x = v[k]
print("null" if x is None else (json.dumps(x) if isinstance(x, (dict, list)) else x))
' "$1"
}

# Expected image and label of Fashion-MNIST sample ID.
expect_image() { tail -c +$((16 + $1 * IMG_SIZE + 1)) "$T/images" | head -c "$IMG_SIZE"; }
expect_label() { od -An -tu1 -j $((8 + $1)) -N1 "$T/labels" | tr -d ' \n'; }

# get_matches DATASET ID: `get` returns exactly the IDX image bytes and
# `get --json` the IDX label.
get_matches() {
	local ds=$1 id=$2 label
	"$IB" get "$ds" "$id" >"$T/got" 2>"$T/err" || return 1
	expect_image "$id" >"$T/want"
	cmp -s "$T/got" "$T/want" || { echo "# sample $id: bytes differ"; return 1; }
	label=$("$IB" get --json "$ds" "$id" | json_field label) || return 1
	[ "$label" = "$(expect_label "$id")" ] || { echo "# sample $id: label $label"; return 1; }
}

# flip_byte FILE OFFSET: inverts one byte in place.
flip_byte() {
	local f=$1 off=$2 b
	b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' \n')
	[ -n "$b" ] || return 1
	printf "$(printf '\\%03o' $((b ^ 255)))" |
		dd of="$f" bs=1 seek="$off" count=1 conv=notrunc status=none
}

# tree_digest DIR: one digest of every file's path and content.
tree_digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum | md5sum); }

gzip -dc "$DATA/train-images-idx3-ubyte.gz" >"$T/images" || exit 1
gzip -dc "$DATA/train-labels-idx1-ubyte.gz" >"$T/labels" || exit 1

# ---------------------------------------------------------------- help --

run 0 "--help exits 0" --help
check "--help prints usage on stdout" grep -q "Usage" "$T/out"
run 0 "--version exits 0" --version
check "--version prints the version" grep -Eq "[0-9]+\.[0-9]+\.[0-9]+" "$T/out"
for cmd in pack info verify get; do
	run 0 "$cmd --help exits 0" "$cmd" --help
	check "$cmd --help prints its usage on stdout" grep -q "ibstore $cmd" "$T/out"
	run 0 "help $cmd exits 0" help "$cmd"
done

# ---------------------------------------------------------- bad args --

run 2 "no command exits 2"
check "no command prints usage on stderr" grep -q "Usage" "$T/err"
run 2 "unknown command exits 2" frobnicate
check "unknown command is named" grep -q "frobnicate" "$T/err"
run 2 "help of an unknown command exits 2" help frobnicate
run 2 "pack without --from exits 2" pack a b
run 2 "pack --from bogus exits 2" pack --from bogus a b
run 2 "pack --from idx with 2 arguments exits 2" pack --from idx a b
run 2 "pack --from folder with 3 arguments exits 2" pack --from folder a b c
run 2 "pack --from cifar without an input exits 2" pack --from cifar out
run 2 "pack --align 3 exits 2" pack --from folder --align 3 a b
run 2 "pack --align 8192 exits 2" pack --from folder --align 8192 a b
run 2 "pack --shard-size 12x exits 2" pack --from folder --shard-size 12x a b
run 2 "pack --shard-size 0 exits 2" pack --from folder --shard-size 0 a b
run 2 "pack --compress zstd exits 2" pack --from folder --compress zstd a b
run 2 "pack --cifar 20 exits 2" pack --from cifar --cifar 20 a b
run 2 "pack --cifar with --from idx exits 2" pack --from idx --cifar 10 a b c
run 2 "pack with an unknown option exits 2" pack --from folder --bogus a b
check "the wrong argument gets a usage hint" grep -q -- "--help" "$T/err"
run 2 "info without a dataset exits 2" info
run 2 "info with two datasets exits 2" info a b
run 2 "info --bogus exits 2" info --bogus a
run 2 "verify without a dataset exits 2" verify
run 2 "get without an id exits 2" get "$T/ds"
run 2 "get with id and --key exits 2" get "$T/ds" 1 --key x

# ---------------------------------------------------------------- pack --

DS=$T/ds
run 0 "pack --from idx Fashion-MNIST" pack --from idx --no-fsync \
	"$DATA/train-images-idx3-ubyte.gz" "$DATA/train-labels-idx1-ubyte.gz" "$DS"
check "pack prints a summary with the sample count" grep -q "$NSAMPLES" "$T/err"
check "the dataset directory exists" test -d "$DS"

run 0 "info --json exits 0" info --json "$DS"
cp "$T/out" "$T/info.json"
check "info --json is valid JSON" "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/info.json"
check "info --json: $NSAMPLES samples" test "$(json_field samples <"$T/info.json")" = "$NSAMPLES"
check "info --json: 10 labels" test "$(json_field labels <"$T/info.json")" = 10
check "info --json: fixed size 784" test "$(json_field fixed_size <"$T/info.json")" = 784
check "info --json: bytes_raw = samples * 784" \
	test "$(json_field bytes_raw <"$T/info.json")" = $((NSAMPLES * IMG_SIZE))
check "info --json: has every documented key" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
need = ["samples", "shards", "bytes_stored", "bytes_raw", "labels", "format_version",
        "uuid", "alignment", "codecs", "fixed_size", "created"]
missing = [k for k in need if k not in v]
assert not missing, missing
import re
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", v["uuid"])
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["created"])
assert sum(v["codecs"].values()) == v["samples"]
' "$T/info.json"
run 0 "info (text) exits 0" info "$DS"
check "info (text) shows the samples" grep -Eq "samples +$NSAMPLES" "$T/out"

RANDOM=4711
ids="0 1 2 59998 59999"
for _ in 1 2 3 4 5; do ids="$ids $(((RANDOM * 32768 + RANDOM) % NSAMPLES))"; done
for id in $ids; do
	check "get $id returns the IDX image and label" get_matches "$DS" "$id"
done

run 0 "get -o FILE" get -o "$T/one.bin" "$DS" 123
expect_image 123 >"$T/want"
check "get -o writes exactly the sample" cmp -s "$T/one.bin" "$T/want"
check "get -o leaves no temporary file" test ! -e "$T/one.bin.tmp"
check "get -o wrote nothing to stdout" test ! -s "$T/out"

run 0 "get --json exits 0" get --json "$DS" 7
check "get --json has every documented key" "$PY" -c '
import json, sys
v = json.load(sys.stdin)
for k in ["id", "key", "label", "size", "stored_size", "codec", "shard", "offset",
          "payload_offset", "class"]:
    assert k in v, k
assert v["id"] == 7 and v["size"] == 784 and v["key"] is None
assert v["shard"].startswith("shard-") and v["shard"].endswith(".ibr")
assert v["payload_offset"] > v["offset"]
' <"$T/out"

run 1 "get of a nonexistent id exits 1" get "$DS" "$NSAMPLES"
check "get of a nonexistent id says why" test -s "$T/err"
run 2 "get 12x exits 2" get "$DS" 12x
run 2 "get -1 exits 2" get "$DS" -1
run 2 "get of an id with a sign exits 2" get "$DS" +1
run 2 "get of an empty id exits 2" get "$DS" ""
run 2 "get of an id past 2^64 exits 2" get "$DS" 99999999999999999999999
run 1 "get --key on a dataset without keys exits 1" get "$DS" --key nothing
run 1 "info of a missing dataset exits 1" info "$T/no-such-dataset"
check "info of a missing dataset names the command" grep -q "^ibstore info: " "$T/err"

run 0 "verify of a sound dataset exits 0" verify "$DS"
check "verify prints no problems" test ! -s "$T/out"
check "verify summary counts every record" grep -q "$NSAMPLES records checked, 0 bad" "$T/err"
run 0 "verify --quiet exits 0" verify --quiet "$DS"

# ------------------------------------------------- atomic publishing --

before=$(tree_digest "$DS")
run 1 "pack to an existing dataset fails" pack --from idx --no-fsync --quiet \
	"$DATA/train-images-idx3-ubyte.gz" "$DATA/train-labels-idx1-ubyte.gz" "$DS"
check "the existing dataset is untouched" test "$(tree_digest "$DS")" = "$before"
check "the failure names the command" grep -q "^ibstore pack: " "$T/err"

mkdir -p "$T/busy" && echo keep >"$T/busy/marker"
run 1 "pack to an existing directory fails" pack --from idx --no-fsync --quiet \
	"$DATA/train-images-idx3-ubyte.gz" "$DATA/train-labels-idx1-ubyte.gz" "$T/busy"
check "the existing directory is untouched" \
	test "$(ls -A "$T/busy")" = marker -a "$(cat "$T/busy/marker")" = keep

mkdir "$T/empty"
run 1 "pack with a missing input fails" pack --from idx --no-fsync --quiet \
	"$T/no-such-images" "$DATA/train-labels-idx1-ubyte.gz" "$T/empty/out"
check "the missing input is named" grep -q "no-such-images" "$T/err"
check "nothing is left at OUT (nor a temporary beside it)" test -z "$(ls -A "$T/empty")"

head -c 100000 "$T/images" >"$T/truncated-images"
run 1 "pack of a truncated IDX file fails" pack --from idx --no-fsync --quiet \
	"$T/truncated-images" "$T/labels" "$T/empty/out"
check "nothing is left after a failed import" test -z "$(ls -A "$T/empty")"

# ---------------------------------------------------------- corruption --

# A flipped payload byte: verify names the sample, get refuses it.
cp -a "$DS" "$T/bad1"
"$IB" get --json "$T/bad1" 4711 >"$T/loc.json"
shard=$(json_field shard <"$T/loc.json")
poff=$(json_field payload_offset <"$T/loc.json")
check "flip a payload byte of sample 4711" flip_byte "$T/bad1/$shard" $((poff + 100))
run 1 "verify exits 1 after a payload flip" verify "$T/bad1"
check "verify names sample 4711" grep -q "^BAD $shard offset [0-9]* sample 4711: " "$T/out"
check "verify reports one bad record" grep -q "1 bad" "$T/err"
run 1 "get of the flipped sample exits 1" get "$T/bad1" 4711
check "get says checksum" grep -qi "checksum" "$T/err"
check "get of the flipped sample wrote no bytes" test ! -s "$T/out"
check "the sample before still reads" get_matches "$T/bad1" 4710
check "the sample after still reads" get_matches "$T/bad1" 4712
run 1 "verify --quiet exits 1 after a flip" verify --quiet "$T/bad1"
check "verify --quiet prints nothing" test ! -s "$T/out" -a ! -s "$T/err"

# A flipped byte in the record header (the sample-id field, 8 bytes in:
# what a misdirected read would show).
cp -a "$DS" "$T/bad2"
"$IB" get --json "$T/bad2" 31337 >"$T/loc.json"
shard=$(json_field shard <"$T/loc.json")
off=$(json_field offset <"$T/loc.json")
check "flip a header byte of sample 31337" flip_byte "$T/bad2/$shard" $((off + 8))
run 1 "verify exits 1 after a header flip" verify "$T/bad2"
check "verify names sample 31337" grep -q "^BAD $shard offset $off sample 31337: " "$T/out"
run 1 "get of the sample with the bad header exits 1" get "$T/bad2" 31337
check "get names the sample" grep -q "31337" "$T/err"
check "the neighbours still read" get_matches "$T/bad2" 31336
check "the neighbours still read (after)" get_matches "$T/bad2" 31338

# ------------------------------------ compression, shards, alignment --

DSZ=$T/dsz
run 0 "pack --compress lz4 --shard-size 4M --align 4096" pack --from idx --no-fsync --quiet \
	--compress lz4 --shard-size 4M --align 4096 \
	"$DATA/train-images-idx3-ubyte.gz" "$DATA/train-labels-idx1-ubyte.gz" "$DSZ"
check "--quiet prints nothing" test ! -s "$T/err"
"$IB" info --json "$DSZ" >"$T/infoz.json"
check "several shards of at most 4 MiB" "$PY" -c '
import json, os, sys
v = json.load(open(sys.argv[1]))
assert v["shards"] > 1, v["shards"]
assert v["alignment"] == 4096
assert v["codecs"]["lz4"] > 0
assert v["bytes_stored"] < v["bytes_raw"]
' "$T/infoz.json"
for id in 0 30000 59999; do
	check "compressed get $id matches" get_matches "$DSZ" "$id"
done
"$IB" get --json "$DSZ" 12345 >"$T/locz.json"
check "records are 4096-aligned" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert v["offset"] % 4096 == 0 and v["codec"] == "lz4"
' "$T/locz.json"
run 0 "verify of the compressed dataset exits 0" verify "$DSZ"

# ------------------------------------------------------ folder & keys --

F=$T/folder
mkdir -p "$F/cat" "$F/dog" "$F/bird"
head -c 1000 /dev/urandom >"$F/cat/001.bin"
head -c 3 /dev/urandom >"$F/cat/002.bin"
echo "woof" >"$F/dog/a.txt"
printf 'quoted "name"\n' >"$F/dog/with space.txt"
head -c 70000 /dev/urandom >"$F/bird/x.bin"
run 0 "pack --from folder" pack --from folder --no-fsync --quiet --compress auto "$F" "$T/dsf"
"$IB" info --json "$T/dsf" >"$T/infof.json"
check "folder: 5 samples, 3 labels, 5 keys" "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert (v["samples"], v["labels"], v["keys"]) == (5, 3, 5), v
assert v["classes"] == ["bird", "cat", "dog"], v["classes"]
' "$T/infof.json"
for key in cat/001.bin cat/002.bin dog/a.txt "dog/with space.txt" bird/x.bin; do
	run 0 "get --key '$key'" get "$T/dsf" --key "$key"
	check "get --key '$key' returns the file" cmp -s "$T/out" "$F/$key"
done
run 0 "get --json --key dog/a.txt" get --json "$T/dsf" --key dog/a.txt
check "its key, label and class" "$PY" -c '
import json, sys
v = json.load(sys.stdin)
assert v["key"] == "dog/a.txt" and v["label"] == 2 and v["class"] == "dog", v
' <"$T/out"
run 1 "get --key of an unknown key exits 1" get "$T/dsf" --key cat/none.bin
run 0 "info (text) of the folder dataset" info "$T/dsf"
check "info lists the class names" grep -q "dog" "$T/out"
run 0 "verify the folder dataset" verify "$T/dsf"

# --------------------------------------------------------------- cifar --

# Two synthetic CIFAR-10 batches (label byte + 3072 pixel bytes per record).
"$PY" -c '
import random, sys
r = random.Random(7)
for name, n in ((sys.argv[1], 3), (sys.argv[2], 2)):
    with open(name, "wb") as f:
        for _ in range(n):
            f.write(bytes([r.randrange(10)]) + bytes(r.randrange(256) for _ in range(3072)))
' "$T/batch1.bin" "$T/batch2.bin"
run 0 "pack --from cifar with two batches" pack --from cifar --cifar 10 --no-fsync --quiet \
	"$T/batch1.bin" "$T/batch2.bin" "$T/dsc"
check "cifar: 5 samples of 3072 bytes" test \
	"$("$IB" info --json "$T/dsc" | json_field samples)/$("$IB" info --json "$T/dsc" | json_field fixed_size)" = 5/3072
run 0 "get of the 4th cifar sample" get "$T/dsc" 3
tail -c +2 "$T/batch2.bin" | head -c 3072 >"$T/want"
check "it is the first record of the second batch" cmp -s "$T/out" "$T/want"
run 0 "get --json of the 4th cifar sample" get --json "$T/dsc" 3
check "its label is the record's label byte" \
	test "$(json_field label <"$T/out")" = "$(od -An -tu1 -N1 "$T/batch2.bin" | tr -d ' \n')"

# -------------------------------------------------------------- images --

# A folder of images: a JPEG, a PNG, a WebP and one file that is no image.
mkdir -p "$T/imgs/a" "$T/imgs/b"
"$PY" -c '
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
y, x = np.mgrid[0:60, 0:80]
a = np.stack([x * 3, y * 4, (x ^ y) & 255], -1).astype(np.uint8)
Image.fromarray(a).save(d + "/a/1.jpg", quality=90)
Image.fromarray(a).save(d + "/a/2.png")
Image.fromarray(a).save(d + "/b/3.webp", lossless=True)
open(d + "/b/4.bin", "wb").write(b"no image here")
np.save(d + "/../pixels.npy", a)
' "$T/imgs"
run 0 "pack --from folder of images" pack --from folder --no-fsync --quiet "$T/imgs" "$T/dsi"
run 0 "get --decode of the PNG" get --decode -o "$T/dec.png" "$T/dsi" --key a/2.png
check "get --decode writes the PNG's own pixels" "$PY" -c '
import sys
import numpy as np
from PIL import Image
assert (np.asarray(Image.open(sys.argv[1])) == np.load(sys.argv[2])).all()
' "$T/dec.png" "$T/pixels.npy"
run 0 "get --decode --images 32 --train --epoch 2 --seed 5 of the JPEG" \
	get --decode --images 32 --train --epoch 2 --seed 5 -o "$T/aug.png" "$T/dsi" --key a/1.jpg
check "it is a 32x32 RGB PNG" "$PY" -c '
import sys
from PIL import Image
im = Image.open(sys.argv[1]); assert im.size == (32, 32) and im.mode == "RGB", im
' "$T/aug.png"
run 0 "the same sample, epoch and seed again" \
	get --decode --images 32 --train --epoch 2 --seed 5 -o "$T/aug2.png" "$T/dsi" --key a/1.jpg
check "gives the same pixels" cmp -s "$T/aug.png" "$T/aug2.png"
run 0 "get --decode --images 80x60 --train --pad 4 of the PNG" \
	get --decode --images 60x80 --train --pad 4 --epoch 1 --seed 3 -o "$T/pad.png" "$T/dsi" --key a/2.png
check "is a window of the image framed by 4 black pixels" "$PY" -c '
import sys
import numpy as np
from PIL import Image
got, a = np.asarray(Image.open(sys.argv[1])), np.load(sys.argv[2])
p = np.zeros((68, 88, 3), np.uint8); p[4:64, 4:84] = a
wins = [w for t in range(9) for l in range(9) for w in (p[t:t + 60, l:l + 80],
        p[t:t + 60, l:l + 80][:, ::-1])]
assert got.shape == (60, 80, 3) and any((got == w).all() for w in wins)
' "$T/pad.png" "$T/pixels.npy"
run 2 "get --pad without --train exits 2" \
	get --decode --images 32 --pad 4 -o "$T/y.png" "$T/dsi" 0
check "saying it needs --train" grep -q "needs --train" "$T/err"
run 2 "bench --pad 0 exits 2" bench "$T/dsi" --images 16 --train --pad 0
run 0 "get --decode --images 24x40 (eval) of the WebP" \
	get --decode --images 24x40 -o "$T/ev.png" "$T/dsi" --key b/3.webp
run 1 "get --decode of a sample that is no image exits 1" \
	get --decode -o "$T/x.png" "$T/dsi" --key b/4.bin
check "and says it is no JPEG, PNG or WebP" grep -qi "not a JPEG, PNG or WebP\|no JPEG\|not an image\|unsupported" "$T/err"
check "and writes no file" test ! -e "$T/x.png"
run 2 "get --decode without -o exits 2" get --decode "$T/dsi" 0
run 2 "get --images without --decode exits 2" get --images 32 -o "$T/y.png" "$T/dsi" 0
run 2 "get --train without --images exits 2" get --decode --train -o "$T/y.png" "$T/dsi" 0
run 2 "get --images 0 exits 2" get --decode --images 0 -o "$T/y.png" "$T/dsi" 0
run 2 "get --images 9000 exits 2" get --decode --images 9000 -o "$T/y.png" "$T/dsi" 0
run 2 "bench --train without --images exits 2" bench "$T/dsi" --train
run 1 "bench --images over a sample that is no image fails (corrupt policy fail)" \
	bench "$T/dsi" --images 16 --epochs 1 --policy none --batch 2
check "naming the sample" grep -q "sample 3" "$T/err"

tap_done
