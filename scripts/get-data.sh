#!/usr/bin/env bash
# Gets a dataset for te-train without a download by te_ext itself.
#
#   scripts/get-data.sh fashionmnist
#
# fashionmnist: as root, installs Debian's package dataset-fashion-mnist (30 MB, MIT; it
# puts the four original idx files in /usr/share/datasets/fashion-mnist/, where te-train
# finds them with no flag), running apt-get update first if apt does not know the package.
# As another user it changes nothing and prints what to place where.
# Other datasets (mnist, cifar10, svhn, stl10, usps) come through torchvision:
# te-train --dataset NAME --download, on a machine with network access.
set -euo pipefail

# Where the package puts the files (an override exists only to test this script).
DEBIAN_DIR=${TE_EXT_FASHIONMNIST_DEBIAN_DIR:-/usr/share/datasets/fashion-mnist}
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

usage() {
  echo "usage: $0 fashionmnist" >&2
  echo "  (mnist, cifar10, svhn, stl10, usps: te-train --dataset NAME --download --data-dir DIR)" >&2
  exit 2
}

have_all() {
  for f in $FILES; do [ -f "$DEBIAN_DIR/$f" ] || return 1; done
}

fashionmnist() {
  if have_all; then
    echo "fashionmnist: already installed in $DEBIAN_DIR/"
    return 0
  fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show dataset-fashion-mnist >/dev/null 2>&1; then
      apt-get update -q
    fi
    apt-get install -y -q dataset-fashion-mnist
    if have_all; then
      echo "fashionmnist: installed in $DEBIAN_DIR/"
      return 0
    fi
    echo "fashionmnist: the package installed, but $DEBIAN_DIR/ lacks some of: $FILES" >&2
    return 1
  fi
  cat >&2 <<MSG
fashionmnist is not installed, and this script installs it only as root (on Debian/Ubuntu).
Either, as root:
    apt-get update && apt-get install -y dataset-fashion-mnist
which puts the files in $DEBIAN_DIR/ (te-train then needs no flag); or place these four
files (from https://github.com/zalandoresearch/fashion-mnist, data/fashion/):
    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
in one directory DIR, either directly (DIR/train-images-idx3-ubyte.gz, ...) or in
torchvision's layout (DIR/FashionMNIST/raw/, gzipped or not), and run
    te-train --dataset fashionmnist --data-dir DIR ...
(--data-dir defaults to ./data).
MSG
  return 1
}

[ $# -eq 1 ] || usage
case "$1" in
  fashionmnist|fashion-mnist) fashionmnist ;;
  *) usage ;;
esac
