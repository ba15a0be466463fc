"""pq's Grafana dashboards as code: ``python -m grafana.generate`` (grafana/generate.py)."""
