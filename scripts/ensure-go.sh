#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: makes sure a Go toolchain new enough for
# go.mod is on PATH. On a fresh Debian/Ubuntu machine without Go it installs
# Debian's golang-go, whose `go` command then fetches the toolchain go.mod asks for
# from the Go module proxy (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null 2>&1; then
  for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin"; do
    [ -x "$d/go" ] && export PATH="$d:$PATH" && break
  done
fi
if ! command -v go >/dev/null 2>&1; then
  echo "ensure-go: installing Debian's golang-go (the toolchain go.mod needs is fetched from the Go proxy)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go ca-certificates git >/dev/null
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
