# Kairos: one static binary in a distroless image, running as a non-root user.
#
#   docker build -t kairos --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(date -u +%FT%TZ) .
#   docker run --rm kairos version
#
# The image has no shell: every command is an exec of /usr/local/bin/kairos
# (deploy/compose.yaml, docs/operations.md "Containers").

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG COMMIT=unknown
ARG DATE=unknown
# CGO_ENABLED=0: SQLite is modernc.org/sqlite (pure Go), so the binary is static.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/kairos-fl/kairos/internal/buildinfo.commit=${COMMIT} -X github.com/kairos-fl/kairos/internal/buildinfo.date=${DATE}" \
      -o /out/kairos ./cmd/kairos \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kairos /usr/local/bin/kairos
# /data is where the aggregator and the merchants keep keys, databases and
# state (a volume); it belongs to the image's non-root user (65532).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
EXPOSE 8700
ENTRYPOINT ["/usr/local/bin/kairos"]
CMD ["aggregator", "serve", "--dir", "/data/agg"]
