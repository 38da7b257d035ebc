# Build: docker build -t bindguard:0.1.0 .
# CI proves this build context without Docker: scripts/check-image-context.sh copies exactly what
# the COPY lines below name into an empty folder and runs the same cargo build there.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin bindguard
RUN strip target/release/bindguard

# glibc, CA roots and a non-root user (65532), nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/bindguard /usr/local/bin/bindguard
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/bindguard"]
CMD ["serve"]
