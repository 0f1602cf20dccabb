# The orderflow image: worker, API, carrier simulator and mail server of docker-compose.yml
# (`orderflow worker`, `orderflow api`, `orderflow carrier-simulator`, `orderflow mail-server`).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install /app

# Workers and the API need no privileges; running as root would only widen a breach.
RUN useradd --system --uid 10001 --create-home --home-dir /home/orderflow orderflow \
    && install -d -o orderflow /var/lib/orderflow
USER orderflow
WORKDIR /home/orderflow
# Closed by default: the image runs in production mode, so a container started without the
# secrets of .env.example refuses to start instead of accepting development tokens.
ENV ORDERFLOW_MODE=production

EXPOSE 8000 8100 1025 8025
CMD ["orderflow", "api"]
