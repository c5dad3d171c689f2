//! The schema, as numbered migrations applied in order at start. SQLite and PostgreSQL differ only
//! in how an auto-increment key is spelled and how JSON is taken apart, so each migration is
//! written once with `{ID}` and `{JSON_EACH_ATTRIBUTES}` for them.
//! Times are milliseconds since the Unix epoch (`BIGINT`), lists and maps are JSON text: the same
//! queries then run on both backends through sqlx's `Any` driver.

/// Applied in order; the number is the index + 1. Never edit a released migration: add one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE devices (
    id {ID},
    controller_id TEXT NOT NULL UNIQUE,
    token_hash TEXT UNIQUE,
    device_type TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    last_seen BIGINT
);
CREATE TABLE device_tags (
    device_id BIGINT NOT NULL REFERENCES devices(id),
    tag TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);
CREATE TABLE artifacts (
    id {ID},
    sha256 TEXT NOT NULL UNIQUE,
    sha1 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    size BIGINT NOT NULL,
    filename TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    device_types TEXT NOT NULL,
    security_version BIGINT,
    kind TEXT NOT NULL,
    signers TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE rollouts (
    id {ID},
    name TEXT NOT NULL,
    artifact_id BIGINT NOT NULL REFERENCES artifacts(id),
    device_type TEXT NOT NULL,
    tags TEXT NOT NULL,
    attributes TEXT NOT NULL,
    phases TEXT NOT NULL,
    success_threshold BIGINT NOT NULL,
    error_threshold TEXT NOT NULL,
    download_url TEXT,
    state TEXT NOT NULL,
    current_phase BIGINT NOT NULL,
    pause_reason TEXT,
    accepted_failures BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT
);
CREATE TABLE rollout_members (
    rollout_id BIGINT NOT NULL REFERENCES rollouts(id),
    device_id BIGINT NOT NULL REFERENCES devices(id),
    phase BIGINT NOT NULL,
    late BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_members_by_phase ON rollout_members (rollout_id, phase);
CREATE TABLE actions (
    id {ID},
    rollout_id BIGINT NOT NULL REFERENCES rollouts(id),
    device_id BIGINT NOT NULL REFERENCES devices(id),
    phase BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (rollout_id, device_id)
);
CREATE INDEX actions_by_device ON actions (device_id, state);
CREATE INDEX actions_by_phase ON actions (rollout_id, phase, state);
CREATE TABLE feedback (
    id {ID},
    action_id BIGINT NOT NULL REFERENCES actions(id),
    received_at BIGINT NOT NULL,
    channel TEXT NOT NULL,
    execution TEXT NOT NULL,
    finished TEXT NOT NULL,
    progress_cnt BIGINT,
    progress_of BIGINT,
    code BIGINT,
    details TEXT NOT NULL
);
CREATE INDEX feedback_by_action ON feedback (action_id);
CREATE TABLE rollout_events (
    id {ID},
    rollout_id BIGINT NOT NULL REFERENCES rollouts(id),
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    phase BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX rollout_events_by_rollout ON rollout_events (rollout_id);
"#,
    // 2: bounded feedback per action (store/actions.rs): the stored size of each entry's details,
    // and how many entries of the action were dropped to stay within the bounds.
    r#"
ALTER TABLE feedback ADD COLUMN details_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE feedback SET details_bytes = LENGTH(details);
ALTER TABLE actions ADD COLUMN feedback_dropped BIGINT NOT NULL DEFAULT 0;
"#,
    // 3: dashboard sessions (store/sessions.rs): the sha256 of the cookie's random key.
    r#"
CREATE TABLE dashboard_sessions (
    key_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
"#,
    // 4: the audit log of operator actions (store/audit.rs).
    r#"
CREATE TABLE audit_log (
    id {ID},
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    // 5: operator accounts, their scoped API tokens, and sessions that belong to an account
    // (store/users.rs). Sessions opened with the admin token before accounts existed end.
    r#"
CREATE TABLE users (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id {ID},
    user_id BIGINT NOT NULL REFERENCES users(id),
    label TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
DELETE FROM dashboard_sessions;
ALTER TABLE dashboard_sessions ADD COLUMN user_id BIGINT REFERENCES users(id);
"#,
    // 6: devices per running version, sampled once per hour (store/history.rs), for the
    // dashboard's chart of versions over time.
    r#"
CREATE TABLE version_samples (
    bucket BIGINT NOT NULL,
    version TEXT NOT NULL,
    devices BIGINT NOT NULL,
    PRIMARY KEY (bucket, version)
);
"#,
    // 7: the dashboard's device search at 100,000 devices (store/device_search.rs): attribute
    // values (up to 256 bytes) in their own indexed table, kept by `set_attributes`, filled here
    // from the stored JSON; indexes for the type, newest-action and last-contact filters.
    r#"
CREATE TABLE device_attributes (
    device_id BIGINT NOT NULL REFERENCES devices(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (device_id, key)
);
CREATE INDEX device_attributes_by_value ON device_attributes (key, value);
INSERT INTO device_attributes (device_id, key, value)
    SELECT d.id, j.key, j.value FROM devices d, {JSON_EACH_ATTRIBUTES} j
    WHERE LENGTH(j.value) <= 256;
CREATE INDEX devices_by_type ON devices (device_type, controller_id);
CREATE INDEX devices_by_last_seen ON devices (last_seen);
CREATE INDEX actions_by_state ON actions (state);
CREATE INDEX actions_by_device_newest ON actions (device_id, id);
"#,
    // 8: delta patches (store/delta_patches.rs, deltas.rs): each artifact's image hash (what a
    // patch's base names and devices report they run), the patches made or received per
    // (target, base image), and what each action downloaded of the patch and of the artifact.
    r#"
ALTER TABLE artifacts ADD COLUMN image_sha256 TEXT;
CREATE INDEX artifacts_by_image ON artifacts (image_sha256);
CREATE TABLE delta_patches (
    id {ID},
    target_artifact_id BIGINT NOT NULL REFERENCES artifacts(id),
    base_sha256 TEXT NOT NULL,
    base_artifact_id BIGINT REFERENCES artifacts(id),
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    sha256 TEXT,
    sha1 TEXT,
    md5 TEXT,
    size BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (target_artifact_id, base_sha256)
);
CREATE INDEX delta_patches_by_state ON delta_patches (state);
CREATE INDEX delta_patches_by_sha256 ON delta_patches (sha256);
ALTER TABLE actions ADD COLUMN full_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE actions ADD COLUMN delta_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE actions ADD COLUMN delta_fallback TEXT;
"#,
    // 9: the tenant's current trust document (store/trust.rs, docs/trust.md): one row (`id` 1),
    // replaced only by a document its predecessor accepts.
    r#"
CREATE TABLE trust_document (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
];

/// The rows (`key`, `value`) of a device's attributes JSON `d.attributes`, in each backend's
/// JSON functions (SQLite's JSON1 is built into the bundled SQLite).
pub fn json_each_attributes(postgres: bool) -> &'static str {
    if postgres {
        "json_each_text(d.attributes::json)"
    } else {
        "json_each(d.attributes)"
    }
}

/// The auto-increment primary key of each backend.
pub fn id_column(postgres: bool) -> &'static str {
    if postgres {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    }
}
