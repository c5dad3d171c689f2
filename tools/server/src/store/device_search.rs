//! A page of devices matching the dashboard's search: part of the id, a device type, a tag, the
//! running version, an attribute value, the state of the newest action, silence (not seen for a
//! while); ordered by id, counted in total.
//!
//! Fast in a large fleet (timed at 100,000 devices by `bench/fleet-load.sh`): the query holds
//! only the conditions of the filters given; tags, attributes and the newest action are `EXISTS`
//! probes of their tables' primary keys, so the devices are walked in id order by the id index
//! and a page stops after its devices (an `IN` list of every match had to be sorted whole first:
//! 100 ms and more when all 100,000 matched); a page is found as ids first, then read whole; the
//! count stops at [`COUNT_CAP`] ("more than 10,000 devices match").

use super::database::Store;
use super::devices::DeviceRow;
use super::devices::{COLUMNS, device};
use anyhow::Result;
use rustupdate_ddi::attributes::RUNNING_VERSION;
use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// What to search for; empty strings and `None` match everything.
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

/// Matches are counted up to this many (and one more, to tell "more than").
pub const COUNT_CAP: i64 = 10_000;

/// A bound value of the search query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause of the filters given (conditions from constants, `$n` for every value) and
/// the values in order.
fn where_clause(filter: &DeviceFilter) -> (String, Vec<Value>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let next = |value: Value, values: &mut Vec<Value>| {
        values.push(value);
        values.len()
    };
    if !filter.id_part.is_empty() {
        let n = next(Value::Text(contains_pattern(&filter.id_part)), &mut values);
        conditions.push(format!("controller_id LIKE ${n} ESCAPE '\\'"));
    }
    if !filter.device_type.is_empty() {
        let n = next(Value::Text(filter.device_type.clone()), &mut values);
        conditions.push(format!("device_type = ${n}"));
    }
    if !filter.tag.is_empty() {
        let n = next(Value::Text(filter.tag.clone()), &mut values);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.tag = ${n})"
        ));
    }
    let attribute = |key: &str, value: &str, values: &mut Vec<Value>| {
        let k = next(Value::Text(key.to_owned()), values);
        let v = next(Value::Text(value.to_owned()), values);
        format!(
            "EXISTS (SELECT 1 FROM device_attributes a WHERE a.device_id = devices.id \
             AND a.key = ${k} AND a.value = ${v})"
        )
    };
    if !filter.version.is_empty() {
        let c = attribute(RUNNING_VERSION, &filter.version, &mut values);
        conditions.push(c);
    }
    if let Some((key, value)) = &filter.attribute {
        let c = attribute(key, value, &mut values);
        conditions.push(c);
    }
    if !filter.last_action.is_empty() {
        let n = next(Value::Text(filter.last_action.clone()), &mut values);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM actions a WHERE a.device_id = devices.id AND a.state = ${n} \
             AND a.id = (SELECT MAX(b.id) FROM actions b WHERE b.device_id = devices.id))"
        ));
    }
    if let Some(since) = filter.silent_since {
        let n = next(Value::Int(since), &mut values);
        conditions.push(format!("(last_seen IS NULL OR last_seen < ${n})"));
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (clause, values)
}

fn bind_all<'q>(
    mut query: Query<'q, sqlx::Any, AnyArguments>,
    values: &'q [Value],
) -> Query<'q, sqlx::Any, AnyArguments> {
    for value in values {
        query = match value {
            Value::Text(t) => query.bind(t.as_str()),
            Value::Int(i) => query.bind(*i),
        };
    }
    query
}

impl Store {
    /// Devices `offset..offset + limit` of those matching `filter` (with their tags), and how
    /// many match in all, counted up to [`COUNT_CAP`] + 1 (more than the cap: at least that).
    pub async fn device_page(
        &self,
        filter: &DeviceFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DeviceRow>, i64)> {
        let (clause, values) = where_clause(filter);
        let limit_count = COUNT_CAP + 1;
        let total: i64 = bind_all(
            sqlx::query(sql!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM devices {clause} LIMIT {limit_count}) m"
            )),
            &values,
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let (l, o) = (values.len() + 1, values.len() + 2);
        let ids: Vec<i64> = bind_all(
            sqlx::query(sql!(
                "SELECT id FROM devices {clause} ORDER BY controller_id LIMIT ${l} OFFSET ${o}"
            )),
            &values,
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let mut devices = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(sql!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            let mut d = device(&row)?;
            d.tags = self.tags(d.id).await?;
            devices.push(d);
        }
        Ok((devices, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_the_search_are_literal() {
        assert_eq!(contains_pattern("dev"), "%dev%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn only_the_filters_given_are_conditions_and_values_are_bound() {
        assert_eq!(
            where_clause(&DeviceFilter::default()),
            (String::new(), vec![])
        );
        let filter = DeviceFilter {
            device_type: "board' OR 1=1 --".into(),
            version: "2.0".into(),
            silent_since: Some(5),
            ..Default::default()
        };
        let (clause, values) = where_clause(&filter);
        assert_eq!(
            clause,
            "WHERE device_type = $1 AND EXISTS (SELECT 1 FROM device_attributes a \
             WHERE a.device_id = devices.id AND a.key = $2 AND a.value = $3) \
             AND (last_seen IS NULL OR last_seen < $4)"
        );
        assert_eq!(
            values,
            [
                Value::Text("board' OR 1=1 --".into()),
                Value::Text("running_version".into()),
                Value::Text("2.0".into()),
                Value::Int(5),
            ]
        );
    }
}
