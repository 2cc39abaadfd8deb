# Controller image for the in-cluster addon mode (the test world runs the controller as a local
# process instead: no container engine is needed to develop or test).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.lock
COPY controller/ controller/
# Templates live next to the package in the image (rendering.py looks there too).
COPY templates/ controller/vela_progressive/templates/
RUN pip install --no-cache-dir --no-deps . && useradd -u 65532 -M controller
USER 65532
ENV VP_WEBHOOK_MODE=incluster VP_STATE_DIR=/tmp/vela-progressive
ENTRYPOINT ["vela-progressive-controller", "--liveness=http://0.0.0.0:8080/healthz"]
