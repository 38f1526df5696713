//! Reading `config.toml` and merging it over the embedded default.

use std::path::Path;

use super::locate::{invalid, syntax_error};
use super::{Config, ConfigError};

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

impl Config {
    /// The embedded default configuration.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULT_TOML, "embedded default", None)
    }

    /// Loads `path` merged over the default, or the default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Self::default_config();
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), path.parent())
    }

    /// Parses a user's TOML text merged over the default. `origin` names it in errors;
    /// relative icon paths are resolved against `base_dir`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let user: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax_error(e, text, origin))?;
        let mut merged: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| syntax_error(e, DEFAULT_TOML, "embedded default"))?;
        merge_tables(&mut merged, user);

        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().to_owned();
                invalid(text, origin, key, message)
            })?;
        config.resolve_and_validate(text, origin, base_dir)?;
        Ok(config)
    }
}

/// Deep-merges `user` into `base`: tables merge recursively, anything else replaces.
fn merge_tables(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(user_table)) => {
                merge_tables(base_table, user_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
