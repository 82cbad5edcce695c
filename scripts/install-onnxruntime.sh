#!/usr/bin/env bash
# install-onnxruntime.sh — put onnxruntime's shared library where ebmrun's
# "ort" backend looks for it.
#
# The library comes from the npm package onnxruntime-node, which ships a
# prebuilt libonnxruntime.so.1 for linux-x64; npm is the only registry these
# machines reach that carries it. We fetch the package with `npm pack` (no
# install scripts run), take the one file we need, check its sha256 against
# the value pinned below, and keep it in
#
#     ${EBMRUN_CACHE:-$HOME/.cache/ebmrun}/onnxruntime-1.30.0/libonnxruntime.so.1
#
# Running it again is cheap: when the cached file is there and its sha256
# matches, it prints the path and exits. The last line of output is always the
# library's path, so `lib=$(scripts/install-onnxruntime.sh | tail -n1)` works.
#
# The npm build is CPU-only: it does not contain the CUDA execution provider
# (libonnxruntime_providers_cuda.so), so the "ort-cuda" backend needs an
# onnxruntime GPU build put in ONNXRUNTIME_LIB by hand.
set -euo pipefail

ORT_VERSION=1.30.0
NPM_PACKAGE=onnxruntime-node@${ORT_VERSION}
TARBALL_PATH=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
# sha256 of ${TARBALL_PATH} in ${NPM_PACKAGE}, pinned from the npm registry's tarball.
LIB_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

CACHE=${EBMRUN_CACHE:-$HOME/.cache/ebmrun}
DEST_DIR=${CACHE}/onnxruntime-${ORT_VERSION}
DEST=${DEST_DIR}/libonnxruntime.so.1

die() {
	echo "install-onnxruntime: $*" >&2
	exit 1
}

sha256_of() {
	sha256sum "$1" | cut -d' ' -f1
}

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*) die "this script installs the linux-x64 build only; this machine is $(uname -s)/$(uname -m). Set ONNXRUNTIME_LIB to an onnxruntime ${ORT_VERSION} library built for it." ;;
esac

command -v sha256sum >/dev/null || die "sha256sum not found (Debian: apt-get install coreutils)"

if [[ -f ${DEST} ]]; then
	got=$(sha256_of "${DEST}")
	if [[ ${got} == "${LIB_SHA256}" ]]; then
		echo "onnxruntime ${ORT_VERSION} already installed (sha256 ok)" >&2
		echo "${DEST}"
		exit 0
	fi
	echo "install-onnxruntime: cached ${DEST} has sha256 ${got}, want ${LIB_SHA256}; fetching it again" >&2
fi

command -v npm >/dev/null || die "npm not found; it fetches ${NPM_PACKAGE} (Debian: apt-get install npm)"
command -v tar >/dev/null || die "tar not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ebmrun-ort.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT

echo "fetching ${NPM_PACKAGE} from the npm registry (about 110 MB)…" >&2
if ! (cd "${tmp}" && npm pack --silent "${NPM_PACKAGE}" >npm-pack.out 2>npm-pack.err); then
	cat "${tmp}/npm-pack.err" >&2 || true
	die "npm pack ${NPM_PACKAGE} failed (is the npm registry reachable? see the npm output above)"
fi
tarball=$(find "${tmp}" -maxdepth 1 -name 'onnxruntime-node-*.tgz' -print -quit)
[[ -n ${tarball} ]] || die "npm pack succeeded but left no onnxruntime-node-*.tgz in ${tmp}"

if ! tar -xzf "${tarball}" -C "${tmp}" "${TARBALL_PATH}" 2>"${tmp}/tar.err"; then
	cat "${tmp}/tar.err" >&2
	die "${TARBALL_PATH} is not in ${tarball##*/}; the package layout changed — update TARBALL_PATH in $0"
fi
got=$(sha256_of "${tmp}/${TARBALL_PATH}")
if [[ ${got} != "${LIB_SHA256}" ]]; then
	die "sha256 mismatch for ${TARBALL_PATH} from ${NPM_PACKAGE}: got ${got}, want ${LIB_SHA256}; refusing to install it"
fi

mkdir -p "${DEST_DIR}" || die "cannot create ${DEST_DIR}"
# Copy then rename, so a concurrent reader never sees half a library.
cp "${tmp}/${TARBALL_PATH}" "${DEST}.tmp.$$" || die "cannot write into ${DEST_DIR}"
chmod 0644 "${DEST}.tmp.$$"
mv -f "${DEST}.tmp.$$" "${DEST}" || die "cannot move the library into ${DEST}"

echo "installed onnxruntime ${ORT_VERSION} (sha256 ${LIB_SHA256})" >&2
echo "${DEST}"
