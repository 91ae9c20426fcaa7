# syntax=docker/dockerfile:1
# The paysvc API image: `docker compose up` builds it (see the README, "Operating on a CockroachDB cluster").
#
#   build    builds the wheel exactly as `./dev` installs the package: pip runs the pyproject build backend
#            (maturin, release profile), which builds the Rust core with `--locked` ([tool.maturin] locked = true);
#            `cargo fetch --locked` first fails the build early when Cargo.lock does not match, as CI's
#            `cargo test --locked` would.
#   runtime  the same Python, the wheel and its dependencies in a venv, run as an unprivileged user.
#
# Both stages must use the same Python: the extension is built for that interpreter's ABI (cp312).
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The toolchain CI uses (rust/Cargo.toml asks for at least its rust-version).
ARG RUST_TOOLCHAIN=1.95.0
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
       | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_TOOLCHAIN}" \
    && cargo --version && rustc --version

WORKDIR /src
# Only what the build reads (.dockerignore keeps target/, .venv/ and locally built *.so out).
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust/ rust/
COPY python/ python/
RUN cargo fetch --locked \
    && pip wheel --no-deps --wheel-dir /wheels . \
    && ls -l /wheels

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/paysvc/bin:$PATH
RUN groupadd --system --gid 10001 paysvc \
    && useradd --system --uid 10001 --gid paysvc --create-home --home-dir /home/paysvc \
       --shell /usr/sbin/nologin paysvc
COPY --from=build /wheels/ /tmp/wheels/
RUN python -m venv /opt/paysvc \
    && /opt/paysvc/bin/pip install /tmp/wheels/paysvc-*.whl \
    && rm -rf /tmp/wheels \
    && paysvc --help >/dev/null

USER paysvc
WORKDIR /home/paysvc
EXPOSE 8000
# Ready when the API answers and reaches its database (/readyz answers 503 otherwise). The slim image has
# no curl, so Python's urllib asks; an HTTP error status raises, and the check fails.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# docker-compose.yml sets PAYSVC_DATABASE_URL to the three CockroachDB nodes; `paysvc serve` migrates, then serves.
# (Without it paysvc would start its embedded PostgreSQL under the user's home: not tried in this image.)
CMD ["paysvc", "serve", "--host", "0.0.0.0", "--port", "8000"]
