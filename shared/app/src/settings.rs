//! Reading the global settings document.

use crate::cache::Cache;
use omniline_domain::settings::*;
use omniline_ports::{ConfigStore, PortError};
use std::time::Duration;

/// How long a use case keeps the settings before reading them again: a change (retention)
/// reaches every router and outbound instance within this time.
pub const SETTINGS_TTL: Duration = Duration::from_secs(10);

/// The settings as a use case keeps them: read at most every [`SETTINGS_TTL`].
#[derive(Default)]
pub(crate) struct CachedSettings(Cache<(), Settings>);

impl CachedSettings {
    pub(crate) async fn get(&self, config: &dyn ConfigStore) -> Result<Settings, PortError> {
        if let Some(settings) = self.0.fresh(&(), SETTINGS_TTL) {
            return Ok(settings);
        }
        let (settings, _) = load_settings(config).await?;
        self.0.insert((), settings.clone());
        Ok(settings)
    }
}

/// The stored settings and their version (0 when never written).
pub async fn load_settings(config: &dyn ConfigStore) -> Result<(Settings, u64), PortError> {
    match config.get_doc(SETTINGS_KIND, SETTINGS_ID).await? {
        None => Ok((Settings::default(), 0)),
        Some(doc) => serde_json::from_str(&doc.doc)
            .map(|settings| (settings, doc.version))
            .map_err(|e| PortError::Unavailable(format!("stored settings do not parse: {e}"))),
    }
}
