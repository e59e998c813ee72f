#!/usr/bin/env bash
# One command sets up everything on a fresh Debian 12 machine (run as root, or it uses sudo):
# the system packages cryptainer needs at run time and in tests, the npm dependencies exactly
# as locked, and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# fuse3: fusermount and /etc/fuse.conf; libfuse2: what fuse-native's prebuilt addon links;
# e2fsprogs: mkfs.ext4, e2fsck, resize2fs; ntfs-3g: the NTFS path (mkntfs, ntfsfix, ntfsresize);
# util-linux: losetup, mount; fio: benchmarks; openssl: the benchmark's AES-XTS ceiling;
# gcc, libc6-dev: compile the native XTS engine (native/xts.c, against Node's own headers).
# strace: the test that FileStorage really calls fsync(2)/fdatasync(2) (the fsync audit relies on it).
# gocryptfs: the rootless peer that `npm run bench -- rootless` compares against.
PACKAGES="fuse3 libfuse2 e2fsprogs ntfs-3g util-linux mount fio openssl procps psmisc gcc libc6-dev strace gocryptfs"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null

npm ci --no-audit --no-fund
npm run build
