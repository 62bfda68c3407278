//! `omniline-migrate`: the one-off migration of a stack deployed before the conversation
//! indexes and the account list (issue 3/7) to this release's layout. It runs the two paged,
//! idempotent background jobs of the DynamoDB adapters to the end: `META` items written before
//! the indexes get their index attributes (`DynamoConversationStore::backfill_indexes`), and
//! accounts created before the `ACCOUNTS` partition are listed in it
//! (`DynamoAccountStore::backfill_account_index`); agents created before the email index
//! (issue 4/7: how a person signed in with OpenID Connect is found) get their entry
//! (`omniline_app::admin::agents::index_agent_emails`). Run it once after deploying the indexes,
//! with credentials that may Scan and update both tables (an operator's, not a function's);
//! running it again changes nothing.

use omniline_app::admin::agents::index_agent_emails;
use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::DynamoAccountStore;
use omniline_ports::PortError;

/// What a migration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Conversations given their index attributes.
    pub conversations: usize,
    /// Accounts added to the account list.
    pub accounts: usize,
    /// Agents' email addresses added to the email index.
    pub agent_emails: usize,
    /// Agents whose address another agent holds (no OIDC sign-in until one changes it).
    pub agents_sharing_an_email: Vec<String>,
}

/// Migrates the tables `config_table` and `conversations_table` (see the module documentation).
pub async fn migrate(
    sdk: &aws_config::SdkConfig,
    config_table: &str,
    conversations_table: &str,
) -> Result<Migrated, PortError> {
    let conversations = DynamoConversationStore::new(sdk, conversations_table)
        .backfill_indexes()
        .await?;
    let accounts = DynamoAccountStore::new(sdk, config_table)
        .backfill_account_index()
        .await?;
    let (agent_emails, agents_sharing_an_email) =
        index_agent_emails(&DynamoConfigStore::new(sdk, config_table)).await?;
    Ok(Migrated {
        conversations,
        accounts,
        agent_emails,
        agents_sharing_an_email,
    })
}
