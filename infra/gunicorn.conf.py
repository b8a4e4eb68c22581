"""gunicorn settings shared by the four web services (each is its own gunicorn master)."""

import os

workers = int(os.environ.get("NRW_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("NRW_WEB_THREADS", "8"))
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-" if os.environ.get("NRW_ACCESS_LOG", "1") == "1" else None
# Paths carry ids only; query strings are left out of the access log on purpose.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = "info"
