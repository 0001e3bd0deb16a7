-- Alert silences and maintenance windows, edited through the API and loaded by the alert
-- manager at start. Neither is deleted by the API: DELETE sets deleted_at (and deleted_by),
-- so the audit trail keeps what was silenced and by whom; retention removes old rows.

-- A silence mutes the alerts whose fields match every matcher, between starts_at and ends_at.
CREATE TABLE alert_silences (
    id         uuid PRIMARY KEY,
    -- [{"field": ..., "value": ...}]
    matchers   jsonb        NOT NULL DEFAULT '[]',
    starts_at  timestamptz  NOT NULL,
    ends_at    timestamptz  NOT NULL,
    created_by varchar(255) NOT NULL,
    comment    text,
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    deleted_by varchar(255)
);
-- the alert manager's load (silences not yet over) and retention (expired ones)
CREATE INDEX alert_silences_ends_idx ON alert_silences (ends_at) WHERE deleted_at IS NULL;

-- A maintenance window mutes the alerts it matches every week, on the given days between two
-- times of day (in a fixed offset from UTC).
CREATE TABLE maintenance_windows (
    id                 uuid PRIMARY KEY,
    name               varchar(100) NOT NULL,
    -- [{"field": ..., "value": ...}]; empty: every alert
    matchers           jsonb        NOT NULL DEFAULT '[]',
    -- ISO weekdays, 1 = Monday .. 7 = Sunday
    days               jsonb        NOT NULL,
    -- minutes after midnight: start 0..1439, end 0..1440; end < start runs over midnight
    start_minute       integer      NOT NULL,
    end_minute         integer      NOT NULL,
    utc_offset_minutes integer      NOT NULL DEFAULT 0,
    created_by         varchar(255) NOT NULL,
    comment            text,
    created_at         timestamptz  NOT NULL DEFAULT now(),
    updated_at         timestamptz  NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    deleted_by         varchar(255)
);
