# syntax=docker/dockerfile:1
# moat: a static binary on a distroless, non-root base image.
#   make image IMG=registry.example.com/moat:v0.1.0

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download

# .dockerignore keeps only the Go sources of the binary in the context.
COPY . .

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/moat ./cmd/moat

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/moat /moat
USER 65532:65532
ENTRYPOINT ["/moat"]
CMD ["serve"]
