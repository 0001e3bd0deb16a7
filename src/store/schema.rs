// @generated automatically by Diesel CLI.

diesel::table! {
    admin_audit_logs (id) {
        id -> Uuid,
        #[max_length = 255]
        actor -> Varchar,
        #[max_length = 100]
        action -> Varchar,
        #[max_length = 100]
        resource -> Nullable<Varchar>,
        #[max_length = 255]
        resource_id -> Nullable<Varchar>,
        details -> Jsonb,
        #[max_length = 64]
        ip_address -> Nullable<Varchar>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    alert_silences (id) {
        id -> Uuid,
        matchers -> Jsonb,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        #[max_length = 255]
        created_by -> Varchar,
        comment -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        #[max_length = 255]
        deleted_by -> Nullable<Varchar>,
    }
}

diesel::table! {
    diagnostic_reports (id) {
        id -> Uuid,
        alert_id -> Nullable<Uuid>,
        #[max_length = 100]
        issue_type -> Varchar,
        root_cause -> Nullable<Text>,
        evidence -> Jsonb,
        ai_analysis -> Nullable<Text>,
        #[max_length = 100]
        ai_model -> Nullable<Varchar>,
        #[max_length = 20]
        mode -> Varchar,
        confidence_score -> Nullable<Float8>,
        suggested_fix -> Nullable<Text>,
        #[max_length = 20]
        severity -> Nullable<Varchar>,
        affected_users -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    learning_patterns (id) {
        id -> Uuid,
        #[max_length = 64]
        pattern_hash -> Varchar,
        symptoms -> Jsonb,
        root_cause -> Nullable<Text>,
        solution -> Nullable<Text>,
        success_count -> Int4,
        failure_count -> Int4,
        avg_fix_time_seconds -> Nullable<Float8>,
        auto_fix_enabled -> Bool,
        last_applied_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    maintenance_windows (id) {
        id -> Uuid,
        #[max_length = 100]
        name -> Varchar,
        matchers -> Jsonb,
        days -> Jsonb,
        start_minute -> Int4,
        end_minute -> Int4,
        utc_offset_minutes -> Int4,
        #[max_length = 255]
        created_by -> Varchar,
        comment -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        #[max_length = 255]
        deleted_by -> Nullable<Varchar>,
    }
}

diesel::table! {
    notification_log (id) {
        id -> Uuid,
        alert_id -> Uuid,
        #[max_length = 20]
        channel -> Varchar,
        #[max_length = 20]
        action -> Varchar,
        #[max_length = 20]
        status -> Varchar,
        attempt -> Int4,
        http_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        detail -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    performance_metrics (id) {
        id -> Uuid,
        #[max_length = 50]
        metric_type -> Varchar,
        #[max_length = 255]
        endpoint -> Nullable<Varchar>,
        #[max_length = 64]
        query_hash -> Nullable<Varchar>,
        value_ms -> Nullable<Float8>,
        percentile_95 -> Nullable<Float8>,
        percentile_99 -> Nullable<Float8>,
        sample_count -> Nullable<Int8>,
        optimization_applied -> Nullable<Text>,
        improvement_percent -> Nullable<Float8>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    predictions (id) {
        id -> Uuid,
        #[max_length = 50]
        prediction_type -> Varchar,
        predicted_issue -> Nullable<Text>,
        predicted_time -> Nullable<Timestamptz>,
        confidence -> Nullable<Float8>,
        data_points -> Jsonb,
        proactive_action -> Nullable<Text>,
        action_taken -> Bool,
        #[max_length = 50]
        outcome -> Nullable<Varchar>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    repair_history (id) {
        id -> Uuid,
        diagnostic_id -> Nullable<Uuid>,
        alert_id -> Nullable<Uuid>,
        #[max_length = 100]
        repair_type -> Varchar,
        #[max_length = 20]
        mode -> Varchar,
        fix_applied -> Nullable<Text>,
        success -> Bool,
        attempts -> Int4,
        time_to_fix_seconds -> Nullable<Float8>,
        before_value -> Nullable<Float8>,
        after_value -> Nullable<Float8>,
        verification_result -> Jsonb,
        rollback_plan -> Nullable<Text>,
        rolled_back -> Bool,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    security_incidents (id) {
        id -> Uuid,
        #[max_length = 100]
        threat_type -> Varchar,
        #[max_length = 20]
        severity -> Nullable<Varchar>,
        #[max_length = 64]
        source_ip -> Nullable<Varchar>,
        #[max_length = 255]
        target_endpoint -> Nullable<Varchar>,
        payload -> Nullable<Text>,
        #[max_length = 255]
        user_id -> Nullable<Varchar>,
        mitigation_action -> Nullable<Text>,
        blocked -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    selfheal_write_probe (id) {
        id -> Int4,
        written_at -> Timestamptz,
    }
}

diesel::table! {
    system_alerts (id) {
        id -> Uuid,
        #[max_length = 100]
        alert_type -> Varchar,
        #[max_length = 50]
        component -> Varchar,
        message -> Text,
        #[max_length = 20]
        severity -> Varchar,
        threshold_value -> Nullable<Float8>,
        actual_value -> Nullable<Float8>,
        #[max_length = 64]
        fingerprint -> Varchar,
        labels -> Jsonb,
        metadata -> Jsonb,
        #[max_length = 20]
        state -> Varchar,
        occurrences -> Int4,
        acknowledged -> Bool,
        #[max_length = 255]
        acknowledged_by -> Nullable<Varchar>,
        acknowledged_at -> Nullable<Timestamptz>,
        ack_comment -> Nullable<Text>,
        resolved -> Bool,
        #[max_length = 255]
        resolved_by -> Nullable<Varchar>,
        resolved_at -> Nullable<Timestamptz>,
        resolution -> Nullable<Text>,
        auto_resolved -> Bool,
        silenced -> Bool,
        first_seen -> Timestamptz,
        last_seen -> Timestamptz,
        last_notified_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    system_health_metrics (id) {
        id -> Uuid,
        #[max_length = 100]
        metric_name -> Varchar,
        metric_value -> Float8,
        #[max_length = 50]
        metric_unit -> Nullable<Varchar>,
        #[max_length = 50]
        component -> Varchar,
        #[max_length = 20]
        severity -> Varchar,
        tags -> Jsonb,
        bucket_start -> Timestamptz,
        bucket_seconds -> Int4,
        sample_count -> Int8,
        min_value -> Float8,
        max_value -> Float8,
        p50 -> Float8,
        p95 -> Float8,
        p99 -> Float8,
        instance_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    admin_audit_logs,
    alert_silences,
    diagnostic_reports,
    learning_patterns,
    maintenance_windows,
    notification_log,
    performance_metrics,
    predictions,
    repair_history,
    security_incidents,
    selfheal_write_probe,
    system_alerts,
    system_health_metrics,
);
