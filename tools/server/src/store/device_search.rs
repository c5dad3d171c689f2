//! A page of devices matching the dashboard's search: part of the id, a device type, a tag, the
//! running version, an attribute value, the state of the newest action, silence (not seen for a
//! while); ordered by id, counted in total. Each filter is one condition on the device's row or
//! an indexed lookup, so a page stays cheap in a large fleet (measured at 100,000 devices by
//! `bench/fleet-load.sh`).

use super::Store;
use super::devices::{COLUMNS, device};
use crate::store::DeviceRow;
use anyhow::Result;
use sqlx::Row;

/// What to search for; empty strings match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// A part of the controller id (matched literally: `%` and `_` are not wildcards).
    pub id_part: String,
    pub device_type: String,
    pub tag: String,
    /// The running version the device reports (exactly).
    pub version: String,
    /// An inventory attribute's value (exactly), as `(key, value)`.
    pub attribute: Option<(String, String)>,
    /// The state of the device's newest action (`rustupdate_rollout::ActionState`).
    pub last_action: String,
    /// Only devices not seen since this time (epoch ms), or never.
    pub silent_since: Option<i64>,
}

/// `LIKE` pattern matching the stored attributes (compact JSON of a sorted map, written by
/// `set_attributes`) that hold `key` with exactly `value`. Inside JSON strings every `"` is
/// escaped, so the unescaped `"key":"value"` only occurs as that pair.
fn attribute_pattern(key: &str, value: &str) -> String {
    let pair = format!(
        "{}:{}",
        serde_json::Value::from(key),
        serde_json::Value::from(value)
    );
    contains_pattern(&pair)
}

/// `LIKE` pattern matching `text` anywhere, with `\` escaping the wildcards.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

const WHERE: &str = "WHERE controller_id LIKE $1 ESCAPE '\\' \
     AND ($2 = '' OR device_type = $2) \
     AND ($3 = '' OR id IN (SELECT device_id FROM device_tags WHERE tag = $3)) \
     AND ($4 = '' OR attributes LIKE $4 ESCAPE '\\') \
     AND ($5 = '' OR attributes LIKE $5 ESCAPE '\\') \
     AND ($6 = '' OR (SELECT a.state FROM actions a WHERE a.device_id = devices.id \
                      ORDER BY a.id DESC LIMIT 1) = $6) \
     AND ($7 < 0 OR last_seen IS NULL OR last_seen < $7)";

impl Store {
    /// Devices `offset..offset + limit` of those matching `filter` (with their tags), and how
    /// many match in all.
    pub async fn device_page(
        &self,
        filter: &DeviceFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DeviceRow>, i64)> {
        let pattern = contains_pattern(&filter.id_part);
        let version = match filter.version.as_str() {
            "" => String::new(),
            v => attribute_pattern(rustupdate_ddi::attributes::RUNNING_VERSION, v),
        };
        let attribute = match &filter.attribute {
            Some((k, v)) => attribute_pattern(k, v),
            None => String::new(),
        };
        let silent_since = filter.silent_since.unwrap_or(-1);
        let total: i64 = sqlx::query(sql!("SELECT COUNT(*) AS n FROM devices {WHERE}"))
            .bind(&pattern)
            .bind(&filter.device_type)
            .bind(&filter.tag)
            .bind(&version)
            .bind(&attribute)
            .bind(&filter.last_action)
            .bind(silent_since)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM devices {WHERE} ORDER BY controller_id LIMIT $8 OFFSET $9"
        ))
        .bind(&pattern)
        .bind(&filter.device_type)
        .bind(&filter.tag)
        .bind(&version)
        .bind(&attribute)
        .bind(&filter.last_action)
        .bind(silent_since)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut devices = rows.iter().map(device).collect::<Result<Vec<_>>>()?;
        for d in &mut devices {
            d.tags = self.tags(d.id).await?;
        }
        Ok((devices, total))
    }
}

#[cfg(test)]
mod tests {
    use super::{attribute_pattern, contains_pattern};

    #[test]
    fn attribute_patterns_match_the_stored_json() {
        let stored = serde_json::to_string(&std::collections::BTreeMap::from([
            ("hw_rev", "3"),
            ("running_version", "2.0_rc"),
        ]))
        .unwrap();
        assert_eq!(stored, r#"{"hw_rev":"3","running_version":"2.0_rc"}"#);
        assert_eq!(
            attribute_pattern("running_version", "2.0_rc"),
            r#"%"running_version":"2.0\_rc"%"#
        );
        assert_eq!(attribute_pattern("k", "a\"b"), r#"%"k":"a\\"b"%"#);
    }

    #[test]
    fn wildcards_in_the_search_are_literal() {
        assert_eq!(contains_pattern("dev"), "%dev%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
