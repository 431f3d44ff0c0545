# One image for every Python service: control plane, Celery worker and beat, edge agents, demo origin.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CDN_VAR_DIR=/var/lib/cdn

WORKDIR /app
COPY requirements*.txt ./
RUN pip install -r requirements.txt

COPY . .
# Static files for the dashboard, served by whitenoise from the image.
# Every path a service writes (the state dir, the edges' cache volume mount point) is created
# here and owned by `cdn`: Docker initialises a new named volume from the image's directory,
# and one made from an absent path is root-owned. collectstatic runs with a throwaway var dir
# so that nothing it creates lands root-owned in /var/lib/cdn.
RUN SECRET_KEY=build-only STATIC_ROOT=/app/staticfiles CDN_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var \
    && useradd --system --home /var/lib/cdn --create-home cdn \
    && mkdir -p /var/lib/cdn /var/cache/edge \
    && chown -R cdn:cdn /var/lib/cdn /var/cache/edge
ENV STATIC_ROOT=/app/staticfiles
USER cdn

EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
