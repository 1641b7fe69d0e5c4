//! `proxygate.toml`: the same keys as the environment, lower or upper case, flat.

use std::collections::HashMap;
use std::path::Path;

/// Reads a TOML file into env-style keys (`port = 3333` becomes `PORT=3333`).
pub fn load(path: &Path) -> Result<HashMap<String, String>, String> {
    read(path)
        .and_then(|t| settings(&t).map_err(|e| format!("config file {}: {e}", path.display())))
}

/// Reads and parses a TOML file.
pub fn read(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    text.parse()
        .map_err(|e: toml::de::Error| format!("config file {}: {e}", path.display()))
}

/// Parses TOML text into env-style keys. Nested tables join with `_`: `[groq] api_key = ".."`
/// is `GROQ_API_KEY`.
pub fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    settings(&table)
}

/// The settings of a parsed file as env-style keys; the routing tables
/// (`[[deployments]]`, `[models]`, `[rules]`) are read by `config::routes` instead.
pub fn settings(table: &toml::Table) -> Result<HashMap<String, String>, String> {
    let mut rest = table.clone();
    for t in super::routes::TABLES {
        rest.remove(*t);
    }
    let mut out = HashMap::new();
    flatten("", &rest, &mut out)?;
    Ok(out)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.to_ascii_uppercase()
        } else {
            format!("{prefix}_{}", k.to_ascii_uppercase())
        };
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(n) => Ok(n.to_string()),
                    other => Err(format!("`{key}` holds an unsupported list item {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            toml::Value::Table(t) => {
                flatten(&key, t, out)?;
                continue;
            }
            toml::Value::Datetime(d) => d.to_string(),
        };
        out.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flat_and_nested_keys() {
        let m = super::parse("port = 4000\nrouting_strategy = \"latency\"\nprovider_priority = [\"groq\", \"mock\"]\n[groq]\napi_key = \"k\"\n").unwrap();
        assert_eq!(m["PORT"], "4000");
        assert_eq!(m["ROUTING_STRATEGY"], "latency");
        assert_eq!(m["PROVIDER_PRIORITY"], "groq,mock");
        assert_eq!(m["GROQ_API_KEY"], "k");
        assert!(super::parse("port = ").is_err());
    }
}
