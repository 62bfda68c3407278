//! The system-wide settings (the retention period, the presence timeout), one config document.

use super::{set, to_doc, AdminError, AdminService};
use crate::settings::load_settings;
use omniline_domain::settings::{Settings, SETTINGS_ID, SETTINGS_KIND};
use omniline_ports::Expect;

/// The settings and their version (0: never stored, the defaults).
#[derive(Debug, Clone)]
pub struct StoredSettings {
    pub settings: Settings,
    pub version: u64,
}

/// What to change of the settings (`None`: keep; `Some(None)`: back to the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub retention_days: Option<Option<u32>>,
    pub presence_timeout_seconds: Option<Option<u32>>,
}

impl AdminService {
    pub async fn settings(&self) -> Result<StoredSettings, AdminError> {
        let (settings, version) = load_settings(self.deps.config.as_ref()).await?;
        Ok(StoredSettings { settings, version })
    }

    /// Changes `current` (as read by [`Self::settings`]) unless they changed since.
    pub async fn update_settings(
        &self,
        current: StoredSettings,
        patch: SettingsPatch,
    ) -> Result<StoredSettings, AdminError> {
        let StoredSettings {
            mut settings,
            version,
        } = current;
        set(&mut settings.retention_days, patch.retention_days);
        set(
            &mut settings.presence_timeout_seconds,
            patch.presence_timeout_seconds,
        );
        let expect = if version == 0 {
            Expect::Absent
        } else {
            Expect::Version(version)
        };
        let version = self
            .put_doc(
                SETTINGS_KIND,
                SETTINGS_ID,
                to_doc(&settings, "settings")?,
                expect,
            )
            .await?;
        tracing::info!(
            retention_days = ?settings.retention_days,
            presence_timeout_seconds = settings.presence_timeout(),
            "settings updated"
        );
        Ok(StoredSettings { settings, version })
    }
}
