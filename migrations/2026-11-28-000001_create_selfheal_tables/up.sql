-- selfheal's tables. Names follow the Node original (system_alerts, diagnostic_reports, ...);
-- columns add what the real features need. Timestamps are timestamptz (UTC); measured values
-- are double precision. No foreign keys between these tables: rows arrive through a
-- write-behind queue, and one table's overflow must not make another's writes fail.

CREATE TABLE system_alerts (
    id               uuid PRIMARY KEY,
    alert_type       varchar(100) NOT NULL,
    component        varchar(50)  NOT NULL DEFAULT 'system',
    message          text         NOT NULL,
    severity         varchar(20)  NOT NULL,
    threshold_value  double precision,
    actual_value     double precision,
    -- type + component + identifying labels; repeats of one condition share it
    fingerprint      varchar(64)  NOT NULL,
    labels           jsonb        NOT NULL DEFAULT '{}',
    metadata         jsonb        NOT NULL DEFAULT '{}',
    -- firing | acknowledged | resolved
    state            varchar(20)  NOT NULL DEFAULT 'firing',
    occurrences      integer      NOT NULL DEFAULT 1,
    acknowledged     boolean      NOT NULL DEFAULT false,
    acknowledged_by  varchar(255),
    acknowledged_at  timestamptz,
    ack_comment      text,
    resolved         boolean      NOT NULL DEFAULT false,
    resolved_by      varchar(255),
    resolved_at      timestamptz,
    resolution       text,
    auto_resolved    boolean      NOT NULL DEFAULT false,
    silenced         boolean      NOT NULL DEFAULT false,
    first_seen       timestamptz  NOT NULL,
    last_seen        timestamptz  NOT NULL,
    last_notified_at timestamptz,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX system_alerts_fingerprint_idx ON system_alerts (fingerprint);
CREATE INDEX system_alerts_state_idx ON system_alerts (state);
CREATE INDEX system_alerts_severity_idx ON system_alerts (severity);
CREATE INDEX system_alerts_type_created_idx ON system_alerts (alert_type, created_at);
CREATE INDEX system_alerts_created_idx ON system_alerts (created_at);
-- retention: resolved alerts by age
CREATE INDEX system_alerts_resolved_seen_idx ON system_alerts (last_seen) WHERE state = 'resolved';

-- Every notification attempt, per channel.
CREATE TABLE notification_log (
    id          uuid PRIMARY KEY,
    alert_id    uuid         NOT NULL,
    -- slack | pagerduty | email
    channel     varchar(20)  NOT NULL,
    -- trigger | repeat | acknowledge | resolve
    action      varchar(20)  NOT NULL,
    -- sent | failed | retrying | silenced | skipped
    status      varchar(20)  NOT NULL,
    attempt     integer      NOT NULL DEFAULT 1,
    http_status integer,
    error       text,
    detail      jsonb        NOT NULL DEFAULT '{}',
    created_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX notification_log_alert_idx ON notification_log (alert_id, created_at);

CREATE TABLE diagnostic_reports (
    id               uuid PRIMARY KEY,
    alert_id         uuid,
    issue_type       varchar(100) NOT NULL,
    root_cause       text,
    evidence         jsonb        NOT NULL DEFAULT '{}',
    ai_analysis      text,
    ai_model         varchar(100),
    -- ai | rules
    mode             varchar(20)  NOT NULL DEFAULT 'rules',
    confidence_score double precision,
    suggested_fix    text,
    severity         varchar(20),
    affected_users   integer      NOT NULL DEFAULT 0,
    created_at       timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX diagnostic_reports_issue_idx ON diagnostic_reports (issue_type);
CREATE INDEX diagnostic_reports_alert_idx ON diagnostic_reports (alert_id);
CREATE INDEX diagnostic_reports_created_idx ON diagnostic_reports (created_at);

CREATE TABLE repair_history (
    id                  uuid PRIMARY KEY,
    diagnostic_id       uuid,
    alert_id            uuid,
    repair_type         varchar(100) NOT NULL,
    -- auto | manual | proposed | dry_run
    mode                varchar(20)  NOT NULL DEFAULT 'auto',
    fix_applied         text,
    success             boolean      NOT NULL,
    attempts            integer      NOT NULL DEFAULT 1,
    time_to_fix_seconds double precision,
    -- the measurement the repair is meant to move, before and after
    before_value        double precision,
    after_value         double precision,
    verification_result jsonb        NOT NULL DEFAULT '{}',
    rollback_plan       text,
    rolled_back         boolean      NOT NULL DEFAULT false,
    error               text,
    created_at          timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX repair_history_type_idx ON repair_history (repair_type);
CREATE INDEX repair_history_success_idx ON repair_history (success);
CREATE INDEX repair_history_created_idx ON repair_history (created_at);

CREATE TABLE learning_patterns (
    id                   uuid PRIMARY KEY,
    pattern_hash         varchar(64)  NOT NULL UNIQUE,
    symptoms             jsonb        NOT NULL,
    root_cause           text,
    solution             text,
    success_count        integer      NOT NULL DEFAULT 0,
    failure_count        integer      NOT NULL DEFAULT 0,
    avg_fix_time_seconds double precision,
    auto_fix_enabled     boolean      NOT NULL DEFAULT false,
    last_applied_at      timestamptz,
    created_at           timestamptz  NOT NULL DEFAULT now(),
    updated_at           timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX learning_patterns_auto_fix_idx ON learning_patterns (auto_fix_enabled);
CREATE INDEX learning_patterns_updated_idx ON learning_patterns (updated_at);

CREATE TABLE predictions (
    id               uuid PRIMARY KEY,
    prediction_type  varchar(50)  NOT NULL,
    predicted_issue  text,
    predicted_time   timestamptz,
    confidence       double precision,
    data_points      jsonb        NOT NULL DEFAULT '{}',
    proactive_action text,
    action_taken     boolean      NOT NULL DEFAULT false,
    -- prevented | occurred | false_positive
    outcome          varchar(50),
    created_at       timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX predictions_type_idx ON predictions (prediction_type);
CREATE INDEX predictions_time_idx ON predictions (predicted_time);

CREATE TABLE security_incidents (
    id                uuid PRIMARY KEY,
    threat_type       varchar(100) NOT NULL,
    severity          varchar(20),
    source_ip         varchar(64),
    target_endpoint   varchar(255),
    payload           text,
    user_id           varchar(255),
    mitigation_action text,
    blocked           boolean      NOT NULL DEFAULT false,
    created_at        timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX security_incidents_threat_idx ON security_incidents (threat_type);
CREATE INDEX security_incidents_ip_idx ON security_incidents (source_ip);
CREATE INDEX security_incidents_created_idx ON security_incidents (created_at);

CREATE TABLE performance_metrics (
    id                   uuid PRIMARY KEY,
    metric_type          varchar(50)  NOT NULL,
    endpoint             varchar(255),
    query_hash           varchar(64),
    value_ms             double precision,
    percentile_95        double precision,
    percentile_99        double precision,
    sample_count         bigint,
    optimization_applied text,
    improvement_percent  double precision,
    details              jsonb        NOT NULL DEFAULT '{}',
    created_at           timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX performance_metrics_type_idx ON performance_metrics (metric_type, created_at);
CREATE INDEX performance_metrics_endpoint_idx ON performance_metrics (endpoint);

-- One-minute rollups of the in-memory series. A row is identified by the series (name and
-- tags), the minute and the writing instance: a replay, or a second persist of the same
-- minute, cannot insert it twice.
CREATE TABLE system_health_metrics (
    id             uuid PRIMARY KEY,
    metric_name    varchar(100)     NOT NULL,
    -- the mean over the bucket
    metric_value   double precision NOT NULL,
    metric_unit    varchar(50),
    component      varchar(50)      NOT NULL,
    severity       varchar(20)      NOT NULL DEFAULT 'normal',
    tags           jsonb            NOT NULL DEFAULT '{}',
    bucket_start   timestamptz      NOT NULL,
    bucket_seconds integer          NOT NULL DEFAULT 60,
    sample_count   bigint           NOT NULL,
    min_value      double precision NOT NULL,
    max_value      double precision NOT NULL,
    p50            double precision NOT NULL,
    p95            double precision NOT NULL,
    p99            double precision NOT NULL,
    instance_id    uuid             NOT NULL,
    created_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT system_health_metrics_bucket_key UNIQUE (metric_name, tags, bucket_start, instance_id)
);
CREATE INDEX system_health_metrics_name_bucket_idx ON system_health_metrics (metric_name, bucket_start);
CREATE INDEX system_health_metrics_component_idx ON system_health_metrics (component, bucket_start);
-- retention: rollups by age
CREATE INDEX system_health_metrics_bucket_idx ON system_health_metrics (bucket_start);

-- Admin actions taken through /api/v1/system/*.
CREATE TABLE admin_audit_logs (
    id          uuid PRIMARY KEY,
    actor       varchar(255) NOT NULL,
    action      varchar(100) NOT NULL,
    resource    varchar(100),
    resource_id varchar(255),
    details     jsonb        NOT NULL DEFAULT '{}',
    ip_address  varchar(64),
    user_agent  text,
    created_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_logs_action_idx ON admin_audit_logs (action, created_at);
CREATE INDEX admin_audit_logs_created_idx ON admin_audit_logs (created_at);

-- One row, rewritten when Postgres refuses some rows of a batch: if this write works, the
-- server accepts writes and the refused rows are bad data; if not, the server is refusing
-- (read-only after a failover, disk full) and nothing is held against the rows.
CREATE TABLE selfheal_write_probe (
    id         integer     PRIMARY KEY,
    written_at timestamptz NOT NULL
);
