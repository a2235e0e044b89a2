#!/usr/bin/env bash
# passeur's one entry point: ./build.sh help
set -euo pipefail
cd "$(dirname "$0")"

# CI runs with a bare environment: find Go where Debian machines keep it, and
# give it a home for its caches.
export HOME=${HOME:-/root}
[[ :$PATH: == *:/usr/local/go/bin:* ]] || PATH=$PATH:/usr/local/go/bin
# Binaries without VCS stamps: the same sources give the same image.
export GOFLAGS=${GOFLAGS:--buildvcs=false}

BOARD=${BOARD:-qemu-x86_64}
OUT=${OUT:-out}
CACHE=${CACHE:-.cache}
# Release specs of the products the rescue image knows without a release on
# the key (it can then still back up and recover them).
PRODUCTS=${PASSEUR_PRODUCTS:-qemu/camrec/v8/release.json}

# Host tools the build and the tests use, and the Debian packages they come in.
HOST_TOOLS=(
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils
  /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf
  mkfs.ext4:e2fsprogs mkfs.xfs:xfsprogs mkfs.vfat:dosfstools mkfs.btrfs:btrfs-progs
  mksquashfs:squashfs-tools sfdisk:fdisk blkid:util-linux mcopy:mtools
  zstd:zstd dpkg-deb:dpkg minisign:minisign
  /usr/lib/systemd/boot/efi/systemd-bootx64.efi:systemd-boot-efi debugfs:e2fsprogs xfs_repair:xfsprogs
  age:age fsck.vfat:dosfstools sha256sum:coreutils socat:socat
  chromium:chromium node:nodejs npm:npm
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# deps installs, as root with apt, the host packages that are missing.
deps() {
  local missing=() t
  for t in "${HOST_TOOLS[@]}"; do
    local tool=${t%%:*} pkg=${t#*:}
    if [[ $tool == /* ]]; then [[ -e $tool ]] && continue
    else command -v "$tool" >/dev/null 2>&1 && continue; fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  command -v go >/dev/null 2>&1 || { echo "build.sh: Go 1.26 or newer is needed (https://go.dev/dl)" >&2; exit 1; }
  if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    say "apt-get update (no package lists yet)"
    apt-get update -qq || true
  fi
  ((${#missing[@]})) || return 0
  say "installing host packages: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The key releases are signed with, and that the rescue image trusts. A
# vendor sets PASSEUR_KEY to its own (PASSEUR_KEY.pub beside it); without it
# a development key is made once in the cache.
dev_key() {
  if [[ -n ${PASSEUR_KEY:-} ]]; then return; fi
  PASSEUR_KEY=$PWD/$CACHE/keys/dev.key
  if [[ ! -f $PASSEUR_KEY ]]; then
    mkdir -p "$CACHE/keys"
    "$OUT/bin/passeur" release keygen -out "$CACHE/keys/dev" >/dev/null
    say "made the development signing key $CACHE/keys/dev.key"
  fi
  export PASSEUR_KEY
}

# The trusted root of the release repositories, which the rescue image
# carries. A vendor sets PASSEUR_REPO_ROOT to its repository's (passeur repo
# init prints it); without it a development repository is made once in the
# cache, its keys in $CACHE/keys/repo.
dev_repo() {
  if [[ -n ${PASSEUR_REPO_ROOT:-} ]]; then return; fi
  if [[ ! -f $CACHE/dev-repo/metadata/1.root.json ]]; then
    rm -rf "$CACHE/dev-repo" "$CACHE/keys/repo"
    "$OUT/bin/passeur" repo init -repo "$CACHE/dev-repo" -keys "$CACHE/keys/repo" >/dev/null
    say "made the development repository $CACHE/dev-repo"
  fi
  PASSEUR_REPO_ROOT=$PWD/$CACHE/dev-repo/metadata/1.root.json
  PASSEUR_REPO_KEYS=${PASSEUR_REPO_KEYS:-$PWD/$CACHE/keys/repo}
  export PASSEUR_REPO_ROOT PASSEUR_REPO_KEYS
}

# build builds the host tool, then the board's kernel and initramfs.
build() {
  deps
  mkdir -p "$OUT/bin"
  # Static (no cgo): passeur stage runs on the appliance's own Linux, any distribution.
  CGO_ENABLED=0 go build -o "$OUT/bin/passeur" ./cmds/passeur
  dev_key
  dev_repo
  say "building board $BOARD"
  "$OUT/bin/passeur" build -board "$BOARD" -out "$OUT" -cache "$CACHE" -trust "${PASSEUR_KEY%.key}.pub" -product "$PRODUCTS" -repo-root "$PASSEUR_REPO_ROOT"
}

# module_tree prints the unpacked module tree of the board's kernel.
module_tree() {
  local pkg resolved
  pkg=$(sed -n 's/.*"debian_package": *"\([^"]*\)".*/\1/p' "board/$BOARD/board.json")
  resolved=$(cat "$CACHE/kernel/$pkg.resolved" 2>/dev/null || echo "$pkg")
  ls -d "$CACHE/kernel/$resolved"/lib/modules/* 2>/dev/null | head -1
}

gotest() {
  build
  say "go vet"
  go vet ./...
  say "go test $*"
  # testsum prints what go test prints, then each test's time: where the
  # suite's minutes go (not with -v, whose output is all of it).
  local env=(PASSEUR_OUT=$PWD/$OUT PASSEUR_REQUIRE_VM=1 PASSEUR_MODULES=$PWD/$(module_tree))
  if [[ " $* " == *" -v "* ]]; then
    env "${env[@]}" go test -count=1 -timeout 60m "$@"
  else
    go build -o "$OUT/bin/testsum" ./tests/internal/testsum
    env "${env[@]}" go test -json -count=1 -timeout 60m "$@" | "$OUT/bin/testsum"
  fi
}

# fuzz runs every Fuzz target of the tree for FUZZTIME each (default 30s);
# a crash Go finds is kept under the package's testdata/fuzz/ and becomes,
# from then on, a case of the plain tests.
fuzz() {
  local t=${FUZZTIME:-30s} pkg name
  for pkg in $(go list ./...); do
    for name in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz'); do
      say "fuzz $pkg $name for $t"
      go test -run '^$' -fuzz "^$name\$" -fuzztime "$t" "$pkg"
    done
  done
}

cmd=${1:-build}
shift || true
case $cmd in
  build) build ;;
  test) if (($#)); then gotest "$@"; else gotest ./...; fi ;;
  test-long) if (($#)); then PASSEUR_LONG=1 gotest "$@"; else PASSEUR_LONG=1 gotest ./...; fi ;;
  key)
    build
    "$OUT/bin/passeur" key -board "$BOARD" -out "$OUT" -trust "${PASSEUR_KEY%.key}.pub" -image "$OUT/$BOARD/passeur-key.img" "$@" ;;
  netboot)
    build
    "$OUT/bin/passeur" netboot -board "$BOARD" -out "$OUT" -dir "$OUT/$BOARD/netboot" "$@" ;;
  demo)
    build
    go run ./cmds/passeur-demo -board "$BOARD" -out "$OUT" "$@" ;;
  bench)
    build
    say "benchmarks: boot, backup vs cp -r, index rebuild vs find"
    PASSEUR_OUT=$PWD/$OUT PASSEUR_REQUIRE_VM=1 go test -count=1 -run '^$' -bench . -benchtime 3x -timeout 40m \
      ./tests/ ./initramfs/backup/ ./initramfs/recovery/camrec/ ./initramfs/stream/ "$@" ;;
  fuzz) fuzz ;;
  deps) deps ;;
  clean) rm -rf "$OUT" ;;
  help|-h|--help)
    cat <<USAGE
usage: ./build.sh [command] [args]

  build       (default) install missing host packages, fetch the board's Debian
              kernel into $CACHE/, build $OUT/<board>/vmlinuz and initramfs.cpio.zst
  test        build, go vet, then every test: unit and QEMU (args go to go test,
              e.g. ./build.sh test -run TestInventoryFiveBuses)
  test-long   the same with the long matrices (PASSEUR_LONG=1)
  key         build, then the USB key image $OUT/<board>/passeur-key.img (args go to
              passeur key: -release DIR,... -config FILE -size 4GiB)
  netboot     build, then the netboot bundle in $OUT/<board>/netboot/ (args go to
              passeur netboot: -base URL -key mode=install -key repo=URL ...)
  demo        build, then migrate a camrec 7 appliance to camrec 8 under QEMU:
              OVMF boots the USB key image, console live; ends with both health reports
  bench       build, then the benchmarks, each against a plain baseline
  fuzz        run every fuzz target (parsers of what passeur reads and did not
              write) for FUZZTIME each (default 30s)
  deps        only install the missing host packages
  clean       remove $OUT/ (the download cache $CACHE/ stays)
  help        this text

Environment: BOARD (default qemu-x86_64), OUT (default out), CACHE (default .cache),
PASSEUR_REPO_ROOT (the trusted root of the release repositories, default: a
development repository made once in CACHE/dev-repo, its keys in CACHE/keys/repo),
PASSEUR_KEY (private key releases are signed with; its .pub is trusted by the
image; default: a development key made once in CACHE/keys), PASSEUR_PRODUCTS
(release specs whose product profiles the image carries; default
qemu/camrec/v8/release.json).
USAGE
    ;;
  *) echo "build.sh: unknown command '$cmd' (try ./build.sh help)" >&2; exit 2 ;;
esac
