#!/usr/bin/env bash
# Builds dist/hostmeter_<version>_amd64.deb from a release build with the Swift runtime linked
# statically. No debhelper: dpkg-shlibdeps works out Depends, dpkg-gencontrol writes the control
# file from packaging/debian/{control,changelog}, dpkg-deb builds the archive (owned by root,
# mtimes clamped to the changelog's date, so the same tree gives the same package).
#
#   scripts/build-deb.sh            # prints the path of the .deb on its last line
#
# Needs: Swift, libsqlite3-dev, dpkg-dev, binutils (scripts/deps.sh --test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

die() { echo "build-deb: $*" >&2; exit 1; }

for tool in dpkg-shlibdeps dpkg-gencontrol dpkg-parsechangelog dpkg-deb strip gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils)"
done

version=$(sed -n 's/^ *public static let current = "\([^"]*\)".*/\1/p' Sources/UsageModel/AgentVersion.swift)
[[ -n $version ]] || die "no version found in Sources/UsageModel/AgentVersion.swift"
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[[ $changelog_version == "$version" ]] ||
  die "packaging/debian/changelog's latest entry is $changelog_version but AgentVersion is $version: add an entry"
arch=$(dpkg --print-architecture)
[[ $arch == amd64 ]] || die "packaging/debian/control builds for amd64; this machine is $arch"
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l packaging/debian/changelog -S Timestamp)
export SOURCE_DATE_EPOCH

echo "build-deb: release build of hostmeter $version (static Swift runtime)" >&2
# BIND_NOW: with full RELRO the GOT is read-only from the start (only a relink, not a rebuild).
swift build -c release --static-swift-stdlib --scratch-path .build-static --product hostmeter \
  -Xlinker -z -Xlinker now >&2
binary="$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/hostmeter"
[[ -x $binary ]] || die "no binary at $binary"

# The manual page, generated from the command's own help by swift-argument-parser's tool, so it
# cannot drift from the CLI.
parser_checkout=.build-static/checkouts/swift-argument-parser
[[ -f $parser_checkout/Package.swift ]] || die "no swift-argument-parser checkout under .build-static"
swift build --package-path "$parser_checkout" --scratch-path .build-static/tools --product generate-manual >&2
generate_manual="$(swift build --package-path "$parser_checkout" --scratch-path .build-static/tools --show-bin-path)/generate-manual"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
doc=$root/usr/share/doc/hostmeter

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/hostmeter" "$doc" \
  "$root/usr/share/man/man1" "$root/usr/share/hostmeter/grafana" "$root/usr/share/hostmeter/prometheus" \
  "$root/usr/share/lintian/overrides"

# As dh_strip does for executables: symbols, .comment and .note go (the Swift metadata sections
# the runtime needs are not symbols and stay).
install -m 0755 "$binary" "$root/usr/bin/hostmeter"
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/hostmeter"

install -m 0644 systemd/hostmeter.service "$root/lib/systemd/system/hostmeter.service"
install -m 0644 packaging/hostmeter.yaml "$root/etc/hostmeter/hostmeter.yaml"
install -m 0644 packaging/grafana/hostmeter.json "$root/usr/share/hostmeter/grafana/hostmeter.json"
install -m 0644 packaging/prometheus/hostmeter-rules.yml "$root/usr/share/hostmeter/prometheus/hostmeter-rules.yml"

"$generate_manual" "$root/usr/bin/hostmeter" --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" \
  --authors "$(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)" --output-directory "$work" >&2
[[ -s $work/hostmeter.1 ]] || die "generate-manual wrote no hostmeter.1"
gzip -9n <"$work/hostmeter.1" >"$root/usr/share/man/man1/hostmeter.1.gz"

# Documentation, compressed above 4 KiB as dh_compress does. A native package's changelog is
# changelog.gz (Debian policy 12.7), not changelog.Debian.gz.
install -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n <packaging/debian/changelog >"$doc/changelog.gz"
install -m 0644 README.md "$doc/README.md"
install -m 0644 systemd/README.md "$doc/README.systemd.md"
for page in docs/*.md; do
  [[ -e $page ]] && install -m 0644 "$page" "$doc/$(basename "$page")"
done
find "$doc" -name '*.md' -size +4k -exec gzip -9n {} +
chmod 0644 "$doc"/*

install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/hostmeter"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
printf '%s\n' /etc/hostmeter/hostmeter.yaml >"$root/DEBIAN/conffiles"

# Depends from the libraries the binary links (versioned from their symbols files), then the
# control file; both need a debian/ directory beside the package tree.
install -d "$work/debian"
cp packaging/debian/control packaging/debian/changelog "$work/debian/"
echo 'misc:Depends=' >"$work/debian/hostmeter.substvars"
(cd "$work" && dpkg-shlibdeps -Tdebian/hostmeter.substvars root/usr/bin/hostmeter)
(cd "$work" && dpkg-gencontrol -phostmeter -Proot -Tdebian/hostmeter.substvars -fdebian/files)

# md5sums of everything but the conffiles (dpkg tracks those separately).
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles" "$root/DEBIAN/control"

find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"

mkdir -p dist
deb="dist/hostmeter_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "build-deb: $(du -h "$deb" | cut -f1) $deb" >&2
echo "$deb"
