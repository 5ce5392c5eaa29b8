//! Cases from a portal's public form: visitors without a login send a
//! name, an address, a subject, a description and files. The contact is
//! found by address or made; the case takes the portal's defaults; a
//! confirmation with the case number is queued. All in one transaction,
//! through the same case command (rules included) as every other channel.
//!
//! Nobody proved they own the address, so the case is not put on the
//! contact's account: customers who read their account's cases do not
//! see a stranger's words under their company's name (an agent who knows
//! better sets the account).

use docket_domain::Actor;
use docket_domain::case::{Case, CaseDraft, CasePriority, CaseStatus};
use docket_domain::portal::{Portal, WebFormInput};
use tracing::instrument;

use crate::attachments::NewAttachment;
use crate::hooks::Effects;
use crate::inbound::{contact_by_address, insert_attachments, insert_contact};
use crate::jobs::{NewJob, enqueue};
use crate::rows::existing_ids;
use crate::{Result, Store, StoreError, now};

/// The job that emails the visitor their case number.
pub const WEB_FORM_CONFIRMATION_JOB: &str = "web_form_confirmation";

impl Store {
    /// Opens a case from `portal`'s public form. `files` were written to
    /// disk by the caller; their rows are written here, with the case.
    #[instrument(level = "debug", skip_all)]
    pub async fn submit_web_form(&self, portal: &Portal, input: WebFormInput, files: &[NewAttachment]) -> Result<Case> {
        let input = input.validate()?;
        if !portal.is_active || !portal.web_form.enabled {
            return Err(StoreError::NotFound);
        }
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let system = Actor::system();
            let at = now();
            let contact_id = match contact_by_address(&mut tx, &input.email).await? {
                Some((contact_id, _account)) => contact_id,
                None => insert_contact(&mut tx, &input.email, Some(&input.name), at).await?,
            };
            let attachment_ids = insert_attachments(&mut tx, files, &system, at).await?;
            let form = &portal.web_form;
            let draft = CaseDraft {
                name: input.subject.clone(),
                description: Some(input.description.clone()),
                status: CaseStatus::New,
                priority: form.priority.unwrap_or(CasePriority::Normal),
                case_type: form.case_type,
                account_id: None,
                contact_ids: vec![contact_id.clone()],
                contact_id: Some(contact_id),
                assigned_user_id: None,
                // A team deleted since the portal was saved is left out.
                team_ids: existing_ids(&mut tx, "teams", &form.team_ids).await?,
                is_internal: false,
                attachment_ids,
                silent: false,
                inbound_mailbox_id: None,
            };
            let case = self.create_case_in(&mut tx, &system, draft, None, &Store::top_cause(), &mut effects).await?;
            let confirmation = NewJob {
                kind: WEB_FORM_CONFIRMATION_JOB,
                payload: serde_json::json!({"case_id": case.id, "to": input.email, "portal_id": portal.id}),
                run_at: at,
                idempotency_key: Some(format!("web_form:{}", case.id)),
            };
            enqueue(&mut tx, &confirmation).await?;
            Ok((tx, case))
        }
        .await;
        let (tx, case) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(case)
    }
}
