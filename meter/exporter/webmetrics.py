"""The web config's own series, as Prometheus exports its config's: did the last reload work, and when."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from meter.exporter.webguard import WebConfigWatcher


class WebConfigCollector:
    """``meter_web_config_last_reload_successful`` and its timestamp, while a web config file is in use."""

    def __init__(self, watcher: WebConfigWatcher):
        self.watcher = watcher

    def collect(self):
        if self.watcher.path is None:
            return
        ok = GaugeMetricFamily(
            "meter_web_config_last_reload_successful",
            "1 if the web config file (and the files it names) last loaded, 0 while a broken version is refused",
        )
        ok.add_metric([], 1.0 if self.watcher.last_reload_ok else 0.0)
        yield ok
        at = GaugeMetricFamily(
            "meter_web_config_last_reload_success_timestamp_seconds",
            "Unix time the web config in force was loaded",
        )
        at.add_metric([], self.watcher.loaded_at_unix_s)
        yield at
