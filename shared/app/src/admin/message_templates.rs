//! Message templates ([`omniline_domain::message_templates`]): LINE messages with variables that
//! agents send by id. Config documents (kind [`MESSAGE_TEMPLATE_KIND`]); checked with LINE's
//! rules when saved (422 `invalid_message` naming the property).

use super::{parse_doc, set, to_doc, AdminError, AdminService};
use omniline_domain::clock::new_id;
use omniline_domain::message_templates::{self, MessageTemplate, MESSAGE_TEMPLATE_KIND};
use omniline_ports::{ConfigDoc, Expect};
use serde_json::Value;

/// A template and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTemplate {
    pub template: MessageTemplate,
    pub version: u64,
}

/// What to change of a template (`None`: keep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplatePatch {
    pub name: Option<String>,
    pub messages: Option<Vec<Value>>,
    pub variables: Option<Vec<String>>,
}

fn stored(doc: &ConfigDoc) -> Result<StoredTemplate, AdminError> {
    Ok(StoredTemplate {
        template: parse_doc(doc, "message template")?,
        version: doc.version,
    })
}

fn checked(template: &MessageTemplate) -> Result<(), AdminError> {
    message_templates::check(&template.messages, &template.variables)
        .map_err(|(field, message)| AdminError::InvalidMessage { field, message })
}

impl AdminService {
    /// Every template, by name.
    pub async fn message_templates(&self) -> Result<Vec<StoredTemplate>, AdminError> {
        let docs = self.deps.config.list_docs(MESSAGE_TEMPLATE_KIND).await?;
        let mut all = docs
            .iter()
            .map(stored)
            .collect::<Result<Vec<_>, AdminError>>()?;
        all.sort_by(|a, b| {
            (a.template.name.cmp(&b.template.name)).then(a.template.id.cmp(&b.template.id))
        });
        Ok(all)
    }

    pub async fn message_template(&self, id: &str) -> Result<StoredTemplate, AdminError> {
        stored(
            &self
                .doc(MESSAGE_TEMPLATE_KIND, id, "message template")
                .await?,
        )
    }

    pub async fn create_message_template(
        &self,
        name: String,
        messages: Vec<Value>,
        variables: Vec<String>,
    ) -> Result<StoredTemplate, AdminError> {
        let now = self.now();
        let template = MessageTemplate {
            id: new_id(),
            name,
            messages,
            variables,
            created_at: now.clone(),
            updated_at: now,
        };
        checked(&template)?;
        let version = self
            .put_doc(
                MESSAGE_TEMPLATE_KIND,
                &template.id,
                to_doc(&template, "message template")?,
                Expect::Absent,
            )
            .await?;
        tracing::info!(template_id = %template.id, "message template created");
        Ok(StoredTemplate { template, version })
    }

    /// Changes `current` unless it changed since it was read.
    pub async fn update_message_template(
        &self,
        current: StoredTemplate,
        patch: TemplatePatch,
    ) -> Result<StoredTemplate, AdminError> {
        let StoredTemplate {
            mut template,
            version,
        } = current;
        set(&mut template.name, patch.name);
        set(&mut template.messages, patch.messages);
        set(&mut template.variables, patch.variables);
        template.updated_at = self.now();
        checked(&template)?;
        let version = self
            .put_doc(
                MESSAGE_TEMPLATE_KIND,
                &template.id,
                to_doc(&template, "message template")?,
                Expect::Version(version),
            )
            .await?;
        Ok(StoredTemplate { template, version })
    }

    pub async fn delete_message_template(&self, id: &str) -> Result<(), AdminError> {
        if !self
            .deps
            .config
            .delete_doc(MESSAGE_TEMPLATE_KIND, id)
            .await?
        {
            return Err(AdminError::NotFound("message template"));
        }
        Ok(())
    }
}
