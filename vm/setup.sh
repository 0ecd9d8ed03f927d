#!/usr/bin/env bash
# Prepare everything `make test-vm` needs to boot a throw-away QEMU guest, as root on Debian.
#
#   * apt packages: qemu-system-x86 (TCG emulation; KVM does not work here) and busybox-static
#     (the only binary in the initramfs), installed with --no-install-recommends;
#   * Debian's generic kernel (the cloud kernel lacks 9P), fetched with `apt-get download`
#     and unpacked with `dpkg-deb -x` (never installed), cached under build/vm/;
#   * a tiny initramfs: busybox, vm/init, and the modules the guest loads (decompressed).
#
# Everything lands under build/vm/ (ignored by git); a second run only checks and returns.
# Usage: vm/setup.sh   (prints the paths of the kernel and initramfs it prepared)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM=$ROOT/build/vm
mkdir -p "$VM"

# The modules the guest needs, in load order (each one's dependencies come before it):
# virtio PCI, 9P over virtio (the host's root), overlayfs (a writable layer on tmpfs), and
# AF_VSOCK with the loopback transport (CID 1), plus vsock_diag for `ss --vsock`.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
netfs fscache 9pnet 9pnet_virtio 9p overlay \
vsock vmw_vsock_virtio_transport_common vsock_loopback vsock_diag"

log() { echo "vm/setup: $*" >&2; }

# --- 1. apt packages --------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" \
    || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. the kernel package (downloaded once, kept as a .deb) -------------------------------
# linux-image-amd64 is a meta package; its dependency names the real one (6.1.0-NN-amd64).
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_package)
if [ -z "$pkg" ]; then
    apt-get update -qq
    pkg=$(kernel_package)
fi
[ -n "$pkg" ] || { log "cannot find the package behind linux-image-amd64"; exit 1; }
release=${pkg#linux-image-}
deb=$(ls "$VM/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    log "fetching $pkg"
    # The sandbox user _apt may not write here; the download is of a signed archive anyway.
    # (stale package lists name a version the mirror dropped: refresh them and retry once)
    download() { (cd "$VM" && apt-get download -qq -o APT::Sandbox::User=root "$pkg"); }
    download || { apt-get update -qq && download; }
    deb=$(ls "$VM/${pkg}"_*.deb | head -n1)
fi
# Kernels of older packages are dropped from the cache.
shopt -s nullglob
for old in "$VM"/linux-image-*.deb "$VM"/vmlinuz-* "$VM"/initramfs-*.cpio.gz; do
    case $old in *"$release"*) ;; *) rm -f "$old" ;; esac
done

# --- 3. the kernel image and the initramfs ----------------------------------------------
# Unpacked (dpkg-deb -x, never installed) into a scratch folder only when they are (re)built:
# on a change of vm/init, of this script, or of the kernel package.
KERNEL=$VM/vmlinuz-$release
INITRD=$VM/initramfs-$release.cpio.gz
if [ ! -f "$KERNEL" ] || [ ! -f "$INITRD" ] || [ "$ROOT/vm/init" -nt "$INITRD" ] \
    || [ "$0" -nt "$INITRD" ] || [ "$deb" -nt "$INITRD" ]; then
    log "building the initramfs for $release"
    scratch=$VM/unpacked
    stage=$VM/initramfs.d
    rm -rf "$scratch" "$stage"
    dpkg-deb -x "$deb" "$scratch"
    cp "$scratch/boot/vmlinuz-$release" "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
    mkdir -p "$stage"/{bin,dev,proc,sys,mnt,lib/modules}
    cp /bin/busybox "$stage/bin/busybox"
    for applet in sh mount mkdir insmod chroot cat echo sleep sync reboot ip; do
        ln -s busybox "$stage/bin/$applet"
    done
    cp "$ROOT/vm/init" "$stage/init" && chmod 755 "$stage/init"
    # busybox insmod takes plain .ko files: newer kernels ship them compressed (xz or zstd).
    for m in $MODULES; do
        f=$(find "$scratch/lib/modules/$release" \( -name "$m.ko" -o -name "$m.ko.xz" \
            -o -name "$m.ko.zst" \) -print -quit)
        [ -n "$f" ] || { log "module $m not found in $pkg"; exit 1; }
        case $f in
            *.xz) xz -dc "$f" >"$stage/lib/modules/$m.ko" ;;
            *.zst) zstd -qdc "$f" >"$stage/lib/modules/$m.ko" ;;
            *) cp "$f" "$stage/lib/modules/$m.ko" ;;
        esac
    done
    echo "$MODULES" >"$stage/lib/modules/order"
    # busybox's own cpio writes the "newc" format the kernel unpacks (no cpio package needed).
    (cd "$stage" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$scratch" "$stage"
fi

echo "KERNEL=$KERNEL"
echo "INITRD=$INITRD"
