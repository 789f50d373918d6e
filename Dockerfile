# signalwise: the live runtime (which serves the API) or an extra API worker, configured only through the
# environment (SIGNALWISE_*; docs/configuration.md). SUMO comes from PyPI (eclipse-sumo), no system SUMO.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# libraries the eclipse-sumo wheel's binaries and matplotlib load at run time
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libxrender1 libxext6 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 signalwise
# the mount points of compose.yaml's volumes, made here and owned by the image's user: Docker gives a named volume
# mounted where the image has no directory to root (mode 755), where this user could not write its run directories
RUN mkdir -p /home/signalwise/runs /home/signalwise/evidence /home/signalwise/camera-alerts-buffer \
        /home/signalwise/models \
    && chown -R signalwise:signalwise /home/signalwise
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# the `redis` extra: compose.yaml sets SIGNALWISE_REDIS_URL, and without the redis package `serve` and `live`
# refuse to start (tests/test_deploy_extras.py checks every extra the services' environment needs is installed)
RUN pip install '.[redis]' && rm -rf /root/.cache
USER signalwise
WORKDIR /home/signalwise
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"
# exec form, no shell in between: signalwise is PID 1 and gets `docker stop`'s SIGTERM itself, which stops a live
# run as Ctrl-C does (run.json: stopped, reason "terminated (SIGTERM)"), well within its 10 s grace
ENTRYPOINT ["signalwise"]
CMD ["live", "--scenario", "corridor", "--speed", "1", "--host", "0.0.0.0", "--port", "8000", "--db", "default", "--repeat-demand"]
