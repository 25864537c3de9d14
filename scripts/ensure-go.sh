#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: puts a Go toolchain that can build this
# module on PATH.
# - Go >= 1.21 already installed: GOTOOLCHAIN=auto lets it fetch the version go.mod
#   names from the Go module proxy by itself.
# - No Go, or an older one (Debian bookworm's golang-go is 1.19): download that
#   same toolchain module from the Go module proxy (golang.org/toolchain, the
#   artifact GOTOOLCHAIN uses) into ~/.cache/cdcd and use it.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$here/go.mod" | head -1)"

for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin"; do
  if ! command -v go >/dev/null 2>&1 && [ -x "$d/go" ]; then export PATH="$d:$PATH"; fi
done

go_minor() { go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
minor="$(go_minor)"
if [ -z "$minor" ] || [ "$minor" -lt 21 ]; then
  case "$(uname -m)" in
    x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) echo "ensure-go: unsupported CPU $(uname -m)" >&2; exit 1 ;;
  esac
  mod="golang.org/toolchain@v0.0.1-go${want}.linux-${arch}"
  root="${XDG_CACHE_HOME:-$HOME/.cache}/cdcd/$mod"
  if [ ! -x "$root/bin/go" ]; then
    if ! command -v curl >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends curl unzip ca-certificates git >/dev/null
    fi
    echo "ensure-go: fetching Go ${want} from the Go module proxy" >&2
    tmp="$(mktemp -d)"
    curl -fsSL "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/v0.0.1-go${want}.linux-${arch}.zip" -o "$tmp/go.zip"
    mkdir -p "$(dirname "$root")"
    unzip -q "$tmp/go.zip" -d "$tmp/x"
    rm -rf "$root" && mv "$tmp/x/$mod" "$root" && rm -rf "$tmp"
    chmod +x "$root"/bin/* "$root"/pkg/tool/*/* 2>/dev/null || true
  fi
  export PATH="$root/bin:$PATH" GOROOT="$root"
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
