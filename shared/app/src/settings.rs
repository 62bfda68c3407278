//! Reading the global settings document.

use omniline_domain::settings::*;
use omniline_ports::{ConfigStore, PortError};

/// The stored settings and their version (0 when never written).
pub async fn load_settings(config: &dyn ConfigStore) -> Result<(Settings, u64), PortError> {
    match config.get_doc(SETTINGS_KIND, SETTINGS_ID).await? {
        None => Ok((Settings::default(), 0)),
        Some(doc) => serde_json::from_str(&doc.doc)
            .map(|settings| (settings, doc.version))
            .map_err(|e| PortError::Unavailable(format!("stored settings do not parse: {e}"))),
    }
}
