# Jubilant DB server image: built in one stage, run from a slim one as a
# non-root user, data in /data (a volume), the native port 6767, the RESP
# port 6379 and the admin HTTP port 9187 (/metrics, /readyz) exposed,
# healthy while `jubectl ping` answers (a failed database refuses PING).
#
#   docker build -t jubilant .
#   docker run -d -p 6767:6767 -p 6379:6379 -v jubilant-data:/data jubilant
#
# Configuration: mount a file and set JUBILANT_CONFIG, or override any flag
# with its JUBILANT_* variable. The container listens on every interface;
# publish its ports only where clients may reach them.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p jubilant-server -p jubectl \
    && cp target/release/jubilant-server target/release/jubectl /usr/local/bin/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin jubilant \
    && mkdir -p /data && chown jubilant:jubilant /data
COPY --from=build /usr/local/bin/jubilant-server /usr/local/bin/jubectl /usr/local/bin/
COPY LICENSE /usr/share/doc/jubilant/LICENSE
USER jubilant
WORKDIR /data
VOLUME /data
ENV JUBILANT_DATA_DIR=/data \
    JUBILANT_LISTEN=0.0.0.0:6767 \
    JUBILANT_RESP_LISTEN=0.0.0.0:6379 \
    JUBILANT_ADMIN_LISTEN=0.0.0.0:9187 \
    JUBILANT_ADDR=127.0.0.1:6767
EXPOSE 6767 6379 9187
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["jubectl", "ping"]
# SIGTERM drains: no new connections, requests in flight answered, the WAL
# made durable; give it longer than server.shutdown_timeout_ms (10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["jubilant-server"]
