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
RUN SECRET_KEY=build-only STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
    && useradd --system --home /var/lib/cdn --create-home cdn \
    && mkdir -p /var/lib/cdn && chown cdn /var/lib/cdn
ENV STATIC_ROOT=/app/staticfiles
USER cdn

EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
