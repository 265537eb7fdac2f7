# syntax=docker/dockerfile:1
# Build: docker build --build-arg VERSION=v1.2.3 -t intercom-bridge .
# Run:   docker run -p 8080:8080 -p 127.0.0.1:9090:9090 -v bridge-data:/data \
#          -e INTERCOM_TOKEN -v $PWD/bridge.yaml:/etc/bridge/bridge.yaml:ro \
#          -v $PWD/rules:/etc/bridge/rules:ro intercom-bridge

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/bridge ./cmd/bridge \
 && mkdir -p /out/data

# distroless/static: CA certificates and tzdata (for dateIn), no shell, and
# the nonroot user (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bridge /usr/local/bin/bridge
COPY --from=build --chown=65532:65532 /out/data /data
COPY config.example.yaml /etc/bridge/bridge.yaml
COPY examples/rules /etc/bridge/examples/rules
USER 65532:65532
VOLUME ["/data"]
# 8080: webhooks; 9090: /healthz, /readyz, /metrics; 4222: embedded NATS when nats.listen is set.
EXPOSE 8080 9090 4222
# The example config reads these; a config of your own sets data_dir and
# admin.listen itself.
ENV BRIDGE_DATA_DIR=/data BRIDGE_ADMIN_LISTEN=0.0.0.0:9090
# distroless has no shell for a HEALTHCHECK: probe /healthz and /readyz from
# the orchestrator (see the README), with admin.listen on 0.0.0.0:9090.
ENTRYPOINT ["/usr/local/bin/bridge"]
CMD ["run", "-config", "/etc/bridge/bridge.yaml"]
