# syntax=docker/dockerfile:1
# Build: docker build --build-arg VERSION=v1.2.3 -t intercom-bridge .
# Run:   docker run -p 8080:8080 -p 127.0.0.1:9090:9090 -v bridge-data:/data \
#          -e INTERCOM_TOKEN -e SHOP_WEBHOOK_SECRET intercom-bridge
#        or with a config of your own:
#          -v $PWD/bridge.yaml:/etc/bridge/bridge.yaml:ro -v $PWD/rules:/etc/bridge/rules:ro

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
# 8080: webhooks; 9090: /healthz, /readyz, /metrics. The embedded NATS
# server listens only when nats.listen is set (with credentials off
# loopback); publish its port yourself if you do.
EXPOSE 8080 9090
# The example config (the default CMD) reads these:
#   BRIDGE_DATA_DIR      data_dir, the volume below
#   BRIDGE_HTTP_LISTEN   http.listen: all interfaces inside the container
#   BRIDGE_ADMIN_LISTEN  admin.listen: publish it to loopback only
#   SHOP_WEBHOOK_SECRET  REQUIRED: the shop source's whsec_ secret. The
#                        example's fallback is printed in the README and
#                        refused off loopback, so without this the bridge
#                        does not start.
#   INTERCOM_TOKEN       optional: without it, dry run (nothing is sent)
#   INTERCOM_BASE_URL    optional: the EU or AU region
# A config of your own sets these itself.
ENV BRIDGE_DATA_DIR=/data BRIDGE_HTTP_LISTEN=0.0.0.0:8080 BRIDGE_ADMIN_LISTEN=0.0.0.0:9090
# distroless has no shell for a HEALTHCHECK: probe /healthz and /readyz from
# the orchestrator (see the README), with admin.listen on 0.0.0.0:9090.
ENTRYPOINT ["/usr/local/bin/bridge"]
CMD ["run", "-config", "/etc/bridge/bridge.yaml"]
