#!/bin/sh
# The runtime root filesystem, assembled in the build stage (Dockerfile): Debian 12's Python
# and the shared libraries it and the environment's extension modules link against, found
# with ldd; dash and sleep (the chart's preStop hook and helm test run them); the CA bundle;
# the two users; and, for vulnerability scanners, the Debian release and the dpkg records of
# exactly the packages whose files are here. No package manager, perl or coreutils.
set -eu
root=${1:?usage: rootfs.sh DIR}
arch=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("MULTIARCH"))')

mkdir -p "$root/usr/bin" "$root/usr/lib/$arch" "$root/etc/ssl/certs" "$root/tmp" \
  "$root/var/lib/dpkg/status.d" "$root/opt"
chmod 1777 "$root/tmp"
# Merged /usr, as in Debian 12: binaries name their loader as /lib64/... or /lib/...
for dir in bin lib sbin; do ln -s "usr/$dir" "$root/$dir"; done
[ ! -d /lib64 ] || { mkdir -p "$root/usr/lib64"; ln -s usr/lib64 "$root/lib64"; }

# Python: the interpreter and its standard library, without what no server imports.
cp -a /usr/bin/python3.11 /usr/bin/python3 "$root/usr/bin/"
cp -a /usr/lib/python3.11 "$root/usr/lib/"
for unused in ensurepip lib2to3 pydoc_data idlelib tkinter turtledemo turtle.py \
    "config-3.11-$arch"; do
  rm -rf "$root/usr/lib/python3.11/$unused"
done
cp -a /usr/bin/dash /usr/bin/sleep "$root/usr/bin/"
ln -s dash "$root/usr/bin/sh"

# Every shared library the ELF files here load, by the path the loader looks up.
elves=$(find "$root/usr/bin" /opt/csms "$root/usr/lib/python3.11/lib-dynload" \
  -type f \( -name '*.so' -o -perm -u+x \) -exec sh -c \
  'for f; do head -c 4 "$f" | grep -q ELF && echo "$f"; done' sh {} +)
libraries=$(for elf in $elves; do ldd "$elf" 2>/dev/null || true; done \
  | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for library in $libraries; do
  case $library in /opt/*) continue ;; esac  # a wheel's own, copied with the environment
  mkdir -p "$(dirname "$root$library")"
  cp -L "$library" "$root$library"
done

cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp /etc/os-release "$root/etc/os-release"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ncsms:x:10001:10001:csms:/tmp:/usr/sbin/nologin\n' \
  > "$root/etc/passwd"
printf 'root:x:0:\ncsms:x:10001:\n' > "$root/etc/group"

# What Debian packages the files come from (distroless's status.d layout, read by trivy).
# dpkg knows a file by the path its package installed, /lib or /usr/lib (merged /usr): ask
# for both. The CA bundle is known by its source certificates.
aliases=$(for path in $libraries /bin/dash /bin/sleep; do
  echo "$path"; echo "$path" | sed 's|^/usr/|/|; t; s|^/|/usr/|'
done)
# shellcheck disable=SC2086  # lists of paths
packages=$(dpkg -S /usr/bin/python3.11 /usr/lib/python3.11/os.py \
  /usr/lib/python3.11/asyncio/__init__.py /usr/share/ca-certificates /etc/os-release \
  $aliases 2>/dev/null \
  | sed 's/: .*//; s/, /\n/g' | cut -d: -f1 | sort -u)
for package in $packages; do
  dpkg-query -s "$package" > "$root/var/lib/dpkg/status.d/${package%%:*}"
done
