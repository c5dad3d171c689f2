//! A page of devices matching the dashboard's search: part of the id, a device type, a tag;
//! ordered by id, counted in total. Each filter is one indexed or bounded condition, so a page
//! stays cheap in a large fleet.

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
     AND ($3 = '' OR id IN (SELECT device_id FROM device_tags WHERE tag = $3))";

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
        let total: i64 = sqlx::query(sql!("SELECT COUNT(*) AS n FROM devices {WHERE}"))
            .bind(&pattern)
            .bind(&filter.device_type)
            .bind(&filter.tag)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM devices {WHERE} ORDER BY controller_id LIMIT $4 OFFSET $5"
        ))
        .bind(&pattern)
        .bind(&filter.device_type)
        .bind(&filter.tag)
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
    use super::contains_pattern;

    #[test]
    fn wildcards_in_the_search_are_literal() {
        assert_eq!(contains_pattern("dev"), "%dev%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
