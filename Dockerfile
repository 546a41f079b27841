# The shop image: one binary, every service (`shop --role <service>`).
#   docker build -t shop .
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p demo-app --bin shop

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --create-home shop
COPY --from=build /src/target/release/shop /usr/local/bin/shop
USER shop
WORKDIR /home/shop
ENTRYPOINT ["shop"]
