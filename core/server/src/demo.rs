//! Demo data for `docket serve --demo`: a small, believable helpdesk to
//! click through. Loaded once per database (a settings marker remembers).

use anyhow::Context;
use docket_domain::Actor;
use docket_domain::account::NewAccount;
use docket_domain::case::{CasePatch, CasePriority, CaseStatus, CaseType, NewCase};
use docket_domain::contact::NewContact;
use docket_domain::team::{NewTeam, TeamMember};
use docket_domain::user::{NewUser, UserType};
use docket_store::Store;

use crate::secrets;

const MARKER: &str = "demo_data_loaded";
/// Demo logins share one password so the README can print it.
pub const DEMO_PASSWORD: &str = "docket-demo";

/// The admin the CLI acts as.
pub async fn system_admin(store: &Store) -> anyhow::Result<Actor> {
    store.first_admin().await?.context("no active admin user: run `docket serve` once to create one")
}

pub async fn load(store: &Store) -> anyhow::Result<()> {
    if store.setting(MARKER).await?.is_some() {
        println!("Demo data already loaded; agent logins: alice, bob, carol (password `{DEMO_PASSWORD}`)");
        return Ok(());
    }
    let admin = system_admin(store).await?;
    let agent_role = store.role_id_by_name("Agent").await?.context("the Agent role is missing")?;
    let hash = secrets::hash_password(DEMO_PASSWORD.to_string()).await?;

    let mut agents = Vec::new();
    for (username, name) in [("alice", "Alice Moreau"), ("bob", "Bob Okafor"), ("carol", "Carol Lindqvist")] {
        let user = store
            .create_user(
                &admin,
                &NewUser {
                    username: username.into(),
                    name: Some(name.into()),
                    email: Some(format!("{username}@helpdesk.example")),
                    user_type: UserType::Agent,
                    is_active: true,
                    role_ids: vec![agent_role.clone()],
                    ..Default::default()
                },
                Some(hash.clone()),
            )
            .await?;
        agents.push(user);
    }
    let support = store
        .create_team(
            &admin,
            &NewTeam {
                name: "Support".into(),
                members: vec![
                    TeamMember { user_id: agents[0].id.clone(), position: Some("Lead".into()) },
                    TeamMember { user_id: agents[1].id.clone(), position: Some("Tier 1".into()) },
                ],
            },
        )
        .await?;
    let billing = store
        .create_team(
            &admin,
            &NewTeam {
                name: "Billing".into(),
                members: vec![TeamMember { user_id: agents[2].id.clone(), position: Some("Specialist".into()) }],
            },
        )
        .await?;

    let mut contacts = Vec::new();
    for (company, domain, people) in [
        ("Acme Corporation", "acme.example", [("Wile", "Coyote"), ("Road", "Runner")]),
        ("Globex", "globex.example", [("Hank", "Scorpio"), ("Homer", "Simpson")]),
        ("Initech", "initech.example", [("Peter", "Gibbons"), ("Milton", "Waddams")]),
        ("Umbrella Health", "umbrella.example", [("Alice", "Abernathy"), ("Chris", "Redfield")]),
    ] {
        let account = store
            .create_account(
                &admin,
                &NewAccount {
                    name: company.into(),
                    email: Some(format!("support@{domain}")),
                    website: Some(format!("https://{domain}")),
                    ..Default::default()
                },
            )
            .await?;
        for (first, last) in people {
            let contact = store
                .create_contact(
                    &admin,
                    &NewContact {
                        first_name: Some(first.into()),
                        last_name: last.into(),
                        emails: vec![format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase())],
                        account_ids: vec![account.id.clone()],
                        ..Default::default()
                    },
                )
                .await?;
            contacts.push((contact, account.id.clone()));
        }
    }

    let subjects = [
        ("Cannot log in after password reset", CaseType::Incident),
        ("Invoice shows the wrong VAT rate", CaseType::Question),
        ("Export to CSV times out for large reports", CaseType::Problem),
        ("How do I add a second admin?", CaseType::Question),
        ("Emails from the portal land in spam", CaseType::Incident),
        ("Dashboard charts are blank in Firefox", CaseType::Incident),
        ("Request: dark mode", CaseType::Question),
        ("Duplicate charge on card ending 4242", CaseType::Incident),
        ("API returns 502 during nightly sync", CaseType::Problem),
        ("Change the billing contact", CaseType::Question),
        ("Attachments over 10 MB fail to upload", CaseType::Problem),
        ("SSO login loops back to the start page", CaseType::Incident),
    ];
    let statuses =
        [CaseStatus::New, CaseStatus::Assigned, CaseStatus::Pending, CaseStatus::Closed, CaseStatus::Assigned];
    let priorities =
        [CasePriority::Normal, CasePriority::High, CasePriority::Low, CasePriority::Urgent, CasePriority::Normal];
    for i in 0..48 {
        let (subject, case_type) = subjects[i % subjects.len()];
        let (contact, account_id) = &contacts[i % contacts.len()];
        let billing_case = subject.contains("nvoice") || subject.contains("charge") || subject.contains("billing");
        let (team, assignee) = if billing_case { (&billing, &agents[2]) } else { (&support, &agents[i % 2]) };
        let status = statuses[i % statuses.len()];
        let draft = NewCase {
            name: if i < subjects.len() { subject.to_string() } else { format!("{subject} (again)") },
            description: Some(format!(
                "Hello,\n\n{subject}. This started this morning for {}.\n\nThanks,\n{}",
                contact.name, contact.name
            )),
            priority: Some(priorities[i % priorities.len()]),
            case_type: Some(case_type),
            account_id: Some(account_id.clone()),
            contact_id: Some(contact.id.clone()),
            team_ids: vec![team.id.clone()],
            ..Default::default()
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("demo case: {}", e.summary()))?;
        let case = store.create_case(&admin, draft).await?;
        if status != CaseStatus::New {
            // Assign and move along through the normal path, so the demo
            // streams show real Update and Assign notes.
            let patch = CasePatch {
                status: Some(status),
                assigned_user_id: Some(Some(assignee.id.clone())),
                ..Default::default()
            };
            store.update_case(&admin, &case.id, &patch).await?;
        }
    }
    store.set_setting_once(MARKER, &serde_json::json!(true)).await?;
    println!("Loaded demo data: 48 cases, 4 accounts, 8 contacts, teams Support and Billing.");
    println!("Agent logins: alice, bob, carol, all with password `{DEMO_PASSWORD}`");
    Ok(())
}
