# Production image: the web (uvicorn) and worker (celery) processes share it.

# Front-end libraries, exactly as package-lock.json says; served by the app as static files.
FROM node:20-bookworm-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
COPY --from=assets /assets/node_modules ./node_modules

# collectstatic needs settings that import cleanly; the key is a throwaway for this step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 --home-dir /app voice \
    && mkdir -p /app/var/media \
    && chown -R voice /app/var

USER 10001
EXPOSE 8000

# The project's server entry point: uvicorn that drains sockets on SIGTERM (1012).
# Proxy headers are trusted from FORWARDED_ALLOW_IPS (uvicorn's variable).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "voiceapp.serve", "--host", "0.0.0.0", "--port", "8000"]
