DROP TABLE IF EXISTS maintenance_windows;
DROP TABLE IF EXISTS alert_silences;
