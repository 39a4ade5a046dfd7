# syntax=docker/dockerfile:1
# edgenvr and nvrctl in a container: the container route of the README's install section.
# UNTESTED HERE: no Docker engine runs on the project's build machines. The tested route is the
# .deb packages (scripts/package.sh).
#
# The build stage runs on the build machine's own architecture and cross-compiles with Debian's
# gcc cross toolchains, exactly like scripts/package.sh (.cargo/config.toml names the linkers),
# so a multi-arch build does not compile Rust under emulation:
#
#   docker buildx build --platform linux/arm64,linux/arm/v7,linux/amd64 -t edgenvr .
#   docker build -t edgenvr .                      # this machine's architecture only
#
# The runtime stage is debian:bookworm-slim (the binaries need glibc >= 2.34) with the two
# binaries, the default config, and an unprivileged user `edgenvr`.

ARG RUST_VERSION=1.95
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
WORKDIR /src
# The Rust target and the Debian cross compiler for the platform being built.
RUN set -eu; \
    case "$TARGETARCH" in \
      arm64) triple=aarch64-unknown-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      arm)   triple=armv7-unknown-linux-gnueabihf; cross="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;; \
      amd64) triple=x86_64-unknown-linux-gnu; cross="" ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    if [ "$(rustc -vV | sed -n 's/^host: //p')" != "$triple" ]; then \
      [ "$triple" != x86_64-unknown-linux-gnu ] || cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross"; \
      apt-get update -qq; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $cross; \
      rm -rf /var/lib/apt/lists/*; \
      rustup target add "$triple"; \
    fi; \
    echo "$triple" >/triple
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; triple=$(cat /triple); \
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc; \
    if [ "$(rustc -vV | sed -n 's/^host: //p')" = "$triple" ]; then \
      unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER; \
    fi; \
    cargo build --locked --release --target "$triple" -p edgenvr -p nvrctl --bins; \
    install -D -m 0755 "target/$triple/release/edgenvr" /out/edgenvr; \
    install -D -m 0755 "target/$triple/release/nvrctl" /out/nvrctl

FROM debian:bookworm-slim
RUN useradd --system --user-group --home-dir /var/lib/edgenvr --no-create-home \
        --shell /usr/sbin/nologin edgenvr \
    && install -d -o edgenvr -g edgenvr -m 0750 /var/lib/edgenvr /srv/edgenvr/store /run/edgenvr
COPY --from=build /out/edgenvr /out/nvrctl /usr/bin/
COPY packaging/config.toml /etc/edgenvr/config.toml
USER edgenvr
# The store: bind-mount the host's initialised store directory (or a USB disk's) here.
VOLUME ["/srv/edgenvr/store"]
# The state port (nvrctl state / watch); other listeners are whatever the config names.
EXPOSE 7420
ENTRYPOINT ["/usr/bin/edgenvr"]
CMD ["run", "--config", "/etc/edgenvr/config.toml"]
