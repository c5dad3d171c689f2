//! Devices: identity, token, type, inventory attributes, tags, last contact.

use super::database::{Store, now_ms};
use anyhow::Result;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// Longest attribute value the dashboard's search indexes (PostgreSQL's B-tree entries are
/// bounded; a longer value stays in the device's attributes, shown but not searchable).
pub const SEARCHABLE_VALUE_BYTES: usize = 256;
/// Devices per statement when contact times are written (two parameters each; SQLite allows
/// 32,766 parameters, PostgreSQL 65,535).
const CONTACTS_PER_STATEMENT: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: i64,
    pub controller_id: String,
    pub device_type: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    /// Whether the device has its own target token (else it authenticates by gateway token).
    pub has_token: bool,
}

impl DeviceRow {
    /// The `device_type` the device reports, when it differs from the one it is registered with
    /// (shown to the operator, never obeyed).
    pub fn type_mismatch(&self) -> Option<&str> {
        let reported = self
            .attributes
            .get(rustupdate_ddi::attributes::DEVICE_TYPE)?;
        (self.device_type.as_deref() != Some(reported.as_str())).then_some(reported.as_str())
    }
}

pub(super) const COLUMNS: &str =
    "id, controller_id, device_type, attributes, created_at, last_seen, token_hash";

pub(super) fn device(row: &AnyRow) -> Result<DeviceRow> {
    let attributes: String = row.try_get("attributes")?;
    let token: Option<String> = row.try_get("token_hash")?;
    Ok(DeviceRow {
        id: row.try_get("id")?,
        controller_id: row.try_get("controller_id")?,
        device_type: row.try_get("device_type")?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        tags: Vec::new(),
        created_at: row.try_get("created_at")?,
        last_seen: row.try_get("last_seen")?,
        has_token: token.is_some(),
    })
}

impl Store {
    /// Registers a device with its own token (hash only is stored). `Ok(false)` if the
    /// controller id exists already.
    pub async fn add_device(
        &self,
        controller_id: &str,
        device_type: Option<&str>,
        token_hash: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO devices (controller_id, device_type, token_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (controller_id) DO NOTHING",
        )
        .bind(controller_id)
        .bind(device_type)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The device a target token belongs to.
    pub async fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM devices WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device).transpose()
    }

    pub async fn device(&self, controller_id: &str) -> Result<Option<DeviceRow>> {
        let Some(mut device) = self.device_without_tags(controller_id).await? else {
            return Ok(None);
        };
        device.tags = self.tags(device.id).await?;
        Ok(Some(device))
    }

    /// The device's row alone (`tags` empty): what a poll needs (`operations::work_for` reads the
    /// tags only when a running rollout may target the device).
    async fn device_without_tags(&self, controller_id: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM devices WHERE controller_id = $1"
        ))
        .bind(controller_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device).transpose()
    }

    /// The device of a gateway-authenticated poll, registered on first contact. Read first: a
    /// known device's poll writes nothing (an `INSERT … ON CONFLICT DO NOTHING` per poll took
    /// the database's write lock, and on PostgreSQL a sequence value, every time).
    pub async fn device_or_register(&self, controller_id: &str) -> Result<DeviceRow> {
        if let Some(device) = self.device_without_tags(controller_id).await? {
            return Ok(device);
        }
        sqlx::query(
            "INSERT INTO devices (controller_id, created_at) VALUES ($1, $2) \
             ON CONFLICT (controller_id) DO NOTHING",
        )
        .bind(controller_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        match self.device(controller_id).await? {
            Some(device) => Ok(device),
            None => anyhow::bail!("device {controller_id} vanished after registration"),
        }
    }

    /// Writes devices' last contact times (`contacts.rs`), in statements of at most
    /// [`CONTACTS_PER_STATEMENT`] devices; a time never moves backwards.
    pub async fn write_contacts(&self, contacts: &[(i64, i64)]) -> Result<()> {
        for chunk in contacts.chunks(CONTACTS_PER_STATEMENT) {
            let cases: String = (0..chunk.len())
                .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
                .collect();
            let ids: Vec<String> = (0..chunk.len())
                .map(|i| format!("${}", 2 * i + 1))
                .collect();
            let ids = ids.join(", ");
            let mut query = sqlx::query(sql!(
                "UPDATE devices SET last_seen = CASE id{cases} END WHERE id IN ({ids}) \
                 AND (last_seen IS NULL OR last_seen < CASE id{cases} END)"
            ));
            for &(id, at) in chunk {
                query = query.bind(id).bind(at);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Stores the attributes the device reported. The `device_type` among them fills in a device
    /// type that nobody set (a device registered by the gateway token, or added without one) and
    /// never changes one that is set: a device cannot move itself into another product's
    /// rollouts. A differing report stays in the attributes, where `DeviceRow::type_mismatch`
    /// shows it.
    ///
    /// Attribute values up to [`SEARCHABLE_VALUE_BYTES`] are also kept one row each in
    /// `device_attributes`, where the dashboard's search finds them by index.
    pub async fn set_attributes(
        &self,
        id: i64,
        attributes: &BTreeMap<String, String>,
        reported_type: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE devices SET attributes = $1, device_type = COALESCE(device_type, $2) \
             WHERE id = $3",
        )
        .bind(serde_json::to_string(attributes)?)
        .bind(reported_type)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // The searchable copy (store/device_search.rs): values up to SEARCHABLE_VALUE_BYTES.
        sqlx::query("DELETE FROM device_attributes WHERE device_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (key, value) in attributes
            .iter()
            .filter(|(_, v)| v.len() <= SEARCHABLE_VALUE_BYTES)
        {
            sqlx::query(
                "INSERT INTO device_attributes (device_id, key, value) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn tags(&self, device_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT tag FROM device_tags WHERE device_id = $1 ORDER BY tag")
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("tag").map_err(Into::into))
            .collect()
    }

    pub async fn change_tags(
        &self,
        device_id: i64,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for tag in remove {
            sqlx::query("DELETE FROM device_tags WHERE device_id = $1 AND tag = $2")
                .bind(device_id)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        for tag in add {
            sqlx::query(
                "INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) \
                 ON CONFLICT (device_id, tag) DO NOTHING",
            )
            .bind(device_id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every device with its tags, ordered by controller id.
    pub async fn devices(&self) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM devices ORDER BY controller_id"))
            .fetch_all(&self.pool)
            .await?;
        let mut devices = rows.iter().map(device).collect::<Result<Vec<_>>>()?;
        let tags = sqlx::query("SELECT device_id, tag FROM device_tags ORDER BY tag")
            .fetch_all(&self.pool)
            .await?;
        let mut by_device: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for row in &tags {
            by_device
                .entry(row.try_get("device_id")?)
                .or_default()
                .push(row.try_get("tag")?);
        }
        for device in &mut devices {
            device.tags = by_device.remove(&device.id).unwrap_or_default();
        }
        Ok(devices)
    }
}
