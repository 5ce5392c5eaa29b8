//! The store conformance suite: every behaviour here must hold on SQLite
//! and on PostgreSQL alike. Each test body runs once per backend (see the
//! `conformance!` macro at the bottom); the PostgreSQL runs need
//! `DOCKET_TEST_POSTGRES_URL` (scripts/test sets it) and fail instead of
//! skipping when `DOCKET_REQUIRE_POSTGRES=1`.

use std::collections::BTreeSet;

use docket_domain::Actor;
use docket_domain::access::{ActionLevels, Level, Permissions};
use docket_domain::account::NewAccount;
use docket_domain::case::{CasePatch, CasePriority, CaseStatus, NewCase};
use docket_domain::contact::NewContact;
use docket_domain::listing::{CaseFilter, CaseSortField, Sort, Window};
use docket_domain::note::{NewPost, NoteType};
use docket_domain::rule::{Outcome, RuleAction, RuleInput, RuleRun};
use docket_domain::team::{NewTeam, TeamMember};
use docket_domain::user::{NewRole, NewUser, UserPatch, UserType};
use docket_store::{RunFilter, Store, StoreError, StoreOptions};

struct TestDb {
    store: Store,
    admin: Actor,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("nested/docket.db").display());
        Self::open(&url, Some(dir)).await
    }

    async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("DOCKET_TEST_POSTGRES_URL") else {
            if std::env::var("DOCKET_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("DOCKET_REQUIRE_POSTGRES=1 but DOCKET_TEST_POSTGRES_URL is not set");
            }
            eprintln!("skipped: DOCKET_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            return None;
        };
        let url = fresh_postgres_database(&admin_url).await;
        Some(Self::open(&url, None).await)
    }

    async fn open(url: &str, dir: Option<tempfile::TempDir>) -> TestDb {
        let store = Store::open(url, &StoreOptions::default()).await.expect("open store");
        assert!(store.bootstrap("not-a-real-hash".into()).await.expect("bootstrap"));
        let admin_id = store.login_user("admin").await.expect("lookup").expect("admin exists").id;
        let admin = store.actor(&admin_id).await.expect("actor").expect("active admin");
        TestDb { store, admin, url: url.to_string(), _dir: dir }
    }

    async fn agent(&self, username: &str, permissions: Permissions, team_ids: Vec<String>) -> Actor {
        let role = self
            .store
            .create_role(&self.admin, &NewRole { name: format!("role-{username}"), permissions })
            .await
            .expect("role");
        let user = self
            .store
            .create_user(
                &self.admin,
                &NewUser {
                    username: username.into(),
                    user_type: UserType::Agent,
                    is_active: true,
                    team_ids,
                    role_ids: vec![role.id],
                    ..Default::default()
                },
                Some("hash".into()),
            )
            .await
            .expect("user");
        self.store.actor(&user.id).await.expect("actor").expect("active")
    }

    async fn case(&self, actor: &Actor, new: NewCase) -> docket_domain::case::Case {
        self.store.create_case(actor, new.validate().expect("valid")).await.expect("create case")
    }
}

/// Creates an empty database on the test server and returns its URL.
async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("docket_t_{}", uuid_like());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).expect("URL has a database");
    format!("{base}/{name}")
}

fn uuid_like() -> String {
    docket_domain::ids::new_id()
}

fn case_levels(read: Level, edit: Level) -> Permissions {
    let mut permissions = Permissions::default_agent();
    permissions.case = ActionLevels { create: Level::All, read, edit, delete: Level::No };
    permissions
}

async fn records_round_trip(db: TestDb) {
    let store = &db.store;
    let team = store.create_team(&db.admin, &NewTeam { name: "Support".into(), members: vec![] }).await.expect("team");
    let agent = db.agent("ann", Permissions::default_agent(), vec![team.id.clone()]).await;
    let account = store
        .create_account(
            &db.admin,
            &NewAccount { name: "Acme".into(), email: Some("it@acme.test".into()), ..Default::default() },
        )
        .await
        .expect("account");
    let contact = store
        .create_contact(
            &db.admin,
            &NewContact {
                first_name: Some("Bo".into()),
                last_name: "Diddley".into(),
                emails: vec!["BO@acme.test".into(), "bo.d@home.test".into()],
                account_ids: vec![account.id.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("contact");
    assert_eq!(contact.emails, vec!["bo@acme.test", "bo.d@home.test"]);
    assert_eq!(store.get_contact(&db.admin, &contact.id).await.expect("get contact"), contact);
    assert_eq!(store.get_account(&db.admin, &account.id).await.expect("get account"), account);

    let created = db
        .case(
            &agent,
            NewCase {
                name: "Printer on fire".into(),
                description: Some("Smoke everywhere".into()),
                priority: Some(CasePriority::Urgent),
                case_type: Some(docket_domain::case::CaseType::Incident),
                account_id: Some(account.id.clone()),
                contact_id: Some(contact.id.clone()),
                assigned_user_id: Some(agent.user_id.clone()),
                team_ids: vec![team.id.clone()],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(created.number, 1);
    assert_eq!(created.status, CaseStatus::New);
    assert_eq!(created.contact_ids, vec![contact.id.clone()]);
    let fetched = store.get_case(&agent, &created.id).await.expect("get case");
    assert_eq!(fetched, created);
    assert_eq!(store.get_case_by_number(&agent, 1).await.expect("by number"), created);

    let stream = store.case_stream(&agent, &created.id, Window::default()).await.expect("stream");
    assert_eq!(stream.total, 1);
    assert_eq!(stream.items[0].note_type, NoteType::Create);

    // A reference to a record that does not exist is a validation error
    // and writes nothing.
    let missing = store
        .create_case(
            &agent,
            NewCase { name: "x".into(), account_id: Some("0".repeat(32)), ..Default::default() }
                .validate()
                .expect("valid"),
        )
        .await
        .expect_err("missing account");
    assert!(matches!(missing, StoreError::Invalid(ref e) if e.fields.contains_key("account_id")), "{missing:?}");
    let all = store.list_cases(&db.admin, &CaseFilter::default()).await.expect("list");
    assert_eq!(all.total, 1);
}

async fn case_numbers_stay_unique_under_concurrent_creation(db: TestDb) {
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let store = db.store.clone();
            let admin = db.admin.clone();
            tokio::spawn(async move {
                let draft = NewCase { name: format!("case {i}"), ..Default::default() }.validate().expect("valid");
                store.create_case(&admin, draft).await.expect("create").number
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.expect("task"));
    }
    let unique: BTreeSet<i64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), 48, "numbers repeated: {numbers:?}");
    assert_eq!(unique, (1..=48).collect::<BTreeSet<i64>>());
    // Creation order and number order agree: sorting by number matches
    // sorting by creation time.
    let by_number = db
        .store
        .list_cases(&db.admin, &CaseFilter { window: Window::new(Some(200), None), ..Default::default() })
        .await
        .expect("list");
    for pair in by_number.items.windows(2) {
        assert!(pair[0].number > pair[1].number);
        assert!(pair[0].created_at >= pair[1].created_at);
    }
}

async fn stale_versions_conflict(db: TestDb) {
    let case = db.case(&db.admin, NewCase { name: "Versioned".into(), ..Default::default() }).await;
    let first = CasePatch { priority: Some(CasePriority::High), version: Some(1), ..Default::default() };
    let updated = db.store.update_case(&db.admin, &case.id, &first).await.expect("first update");
    assert_eq!(updated.version, 2);
    let stale = CasePatch { priority: Some(CasePriority::Low), version: Some(1), ..Default::default() };
    let error = db.store.update_case(&db.admin, &case.id, &stale).await.expect_err("stale");
    assert!(matches!(error, StoreError::VersionConflict { current: 2 }), "{error:?}");
    let after = db.store.get_case(&db.admin, &case.id).await.expect("get");
    assert_eq!(after.priority, CasePriority::High, "a stale update must not write");

    // Racing writers with the same version: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = db.store.clone();
            let admin = db.admin.clone();
            let id = case.id.clone();
            tokio::spawn(async move {
                let patch = CasePatch { name: Some(format!("racer {i}")), version: Some(2), ..Default::default() };
                store.update_case(&admin, &id, &patch).await
            })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(case) => {
                wins += 1;
                assert_eq!(case.version, 3);
            }
            Err(StoreError::VersionConflict { current }) => assert_eq!(current, 3),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn updates_write_audit_notes(db: TestDb) {
    let agent = db.agent("ann", Permissions::default_agent(), vec![]).await;
    let case = db.case(&db.admin, NewCase { name: "Audit me".into(), ..Default::default() }).await;
    let patch = CasePatch {
        status: Some(CaseStatus::Assigned),
        assigned_user_id: Some(Some(agent.user_id.clone())),
        description: Some(Some("not audited".into())),
        ..Default::default()
    };
    let updated = db.store.update_case(&db.admin, &case.id, &patch).await.expect("update");
    assert!(updated.stream_updated_at > case.stream_updated_at);
    let stream = db.store.case_stream(&db.admin, &case.id, Window::default()).await.expect("stream");
    let types: Vec<NoteType> = stream.items.iter().map(|n| n.note_type).collect();
    assert_eq!(types.len(), 3, "{types:?}");
    assert!(
        types.contains(&NoteType::Update) && types.contains(&NoteType::Assign) && types.contains(&NoteType::Create)
    );
    let update = stream.items.iter().find(|n| n.note_type == NoteType::Update).expect("update note");
    assert_eq!(update.data["attributes"]["was"]["status"], "New");
    assert_eq!(update.data["attributes"]["became"]["status"], "Assigned");
    assert_eq!(update.data["fields"], serde_json::json!(["status"]));

    // A patch that changes nothing writes nothing, not even a version.
    let same = db
        .store
        .update_case(&db.admin, &case.id, &CasePatch { status: Some(CaseStatus::Assigned), ..Default::default() })
        .await
        .expect("noop");
    assert_eq!(same.version, updated.version);
}

async fn access_levels_limit_reads_and_writes(db: TestDb) {
    let team_a = db.store.create_team(&db.admin, &NewTeam { name: "A".into(), members: vec![] }).await.expect("team");
    let team_b = db.store.create_team(&db.admin, &NewTeam { name: "B".into(), members: vec![] }).await.expect("team");
    let own = db.agent("own", case_levels(Level::Own, Level::Own), vec![team_a.id.clone()]).await;
    let team = db.agent("team", case_levels(Level::Team, Level::Own), vec![team_a.id.clone()]).await;
    let none = db.agent("none", case_levels(Level::No, Level::No), vec![]).await;

    let in_a = db
        .case(&db.admin, NewCase { name: "in A".into(), team_ids: vec![team_a.id.clone()], ..Default::default() })
        .await;
    let in_b = db
        .case(&db.admin, NewCase { name: "in B".into(), team_ids: vec![team_b.id.clone()], ..Default::default() })
        .await;
    let owned = db.case(&own, NewCase { name: "mine".into(), ..Default::default() }).await;

    let names = |page: docket_domain::listing::Page<docket_domain::case::Case>| -> BTreeSet<String> {
        page.items.into_iter().map(|c| c.name).collect()
    };
    let filter = CaseFilter::default();
    assert_eq!(names(db.store.list_cases(&own, &filter).await.expect("list")), BTreeSet::from(["mine".to_string()]));
    assert_eq!(names(db.store.list_cases(&team, &filter).await.expect("list")), BTreeSet::from(["in A".to_string()]));
    assert_eq!(db.store.list_cases(&none, &filter).await.expect("list").total, 0);
    assert_eq!(db.store.list_cases(&db.admin, &filter).await.expect("list").total, 3);

    // Unreadable: not found. Readable but not editable: forbidden.
    assert!(matches!(db.store.get_case(&own, &in_b.id).await, Err(StoreError::NotFound)));
    assert!(matches!(db.store.get_case(&team, &owned.id).await, Err(StoreError::NotFound)));
    let rename = CasePatch { name: Some("renamed".into()), ..Default::default() };
    assert!(matches!(db.store.update_case(&team, &in_a.id, &rename).await, Err(StoreError::Forbidden(_))));
    assert!(matches!(db.store.update_case(&team, &in_b.id, &rename).await, Err(StoreError::NotFound)));
    assert!(db.store.update_case(&own, &owned.id, &rename).await.is_ok());
    assert!(matches!(db.store.delete_case(&own, &owned.id).await, Err(StoreError::Forbidden(_))));
    // Creating needs only the create level: `none` reads no case but may
    // create one (and then, as its creator, read it).
    let draft = NewCase { name: "x".into(), ..Default::default() }.validate().expect("valid");
    let created = db.store.create_case(&none, draft).await.expect("create");
    assert!(db.store.get_case(&none, &created.id).await.is_err(), "read level no hides even own cases");
    // Only admins manage users.
    assert!(matches!(
        db.store
            .update_user(&team, &own.user_id, &UserPatch { is_active: Some(false), ..Default::default() }, None)
            .await,
        Err(StoreError::Forbidden(_))
    ));
}

async fn portal_users_see_only_their_contacts_public_cases(db: TestDb) {
    let contact = db
        .store
        .create_contact(&db.admin, &NewContact { last_name: "Customer".into(), ..Default::default() })
        .await
        .expect("contact");
    let portal_user = db
        .store
        .create_user(
            &db.admin,
            &NewUser {
                username: "cust".into(),
                user_type: UserType::Portal,
                is_active: true,
                contact_id: Some(contact.id.clone()),
                ..Default::default()
            },
            Some("hash".into()),
        )
        .await
        .expect("portal user");
    let portal = db.store.actor(&portal_user.id).await.expect("actor").expect("active");
    let theirs = db
        .case(&db.admin, NewCase { name: "theirs".into(), contact_id: Some(contact.id.clone()), ..Default::default() })
        .await;
    let internal = db
        .case(
            &db.admin,
            NewCase {
                name: "internal".into(),
                contact_id: Some(contact.id.clone()),
                is_internal: true,
                ..Default::default()
            },
        )
        .await;
    db.case(&db.admin, NewCase { name: "someone else's".into(), ..Default::default() }).await;

    let listed = db.store.list_cases(&portal, &CaseFilter::default()).await.expect("list");
    assert_eq!(listed.items.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["theirs"]);
    assert!(db.store.get_case(&portal, &theirs.id).await.is_ok());
    assert!(matches!(db.store.get_case(&portal, &internal.id).await, Err(StoreError::NotFound)));
    assert!(db.store.list_accounts(&portal, &Default::default()).await.expect("accounts").items.is_empty());
}

async fn filters_sorting_and_pagination(db: TestDb) {
    let agent = db.agent("ann", Permissions::default_agent(), vec![]).await;
    let team = db
        .store
        .create_team(
            &db.admin,
            &NewTeam {
                name: "T".into(),
                members: vec![TeamMember { user_id: agent.user_id.clone(), position: Some("Lead".into()) }],
            },
        )
        .await
        .expect("team");
    let account = db
        .store
        .create_account(&db.admin, &NewAccount { name: "Acme".into(), ..Default::default() })
        .await
        .expect("account");
    let contact = db
        .store
        .create_contact(&db.admin, &NewContact { last_name: "K".into(), ..Default::default() })
        .await
        .expect("contact");
    for i in 1..=30 {
        let mut new = NewCase { name: format!("Case {i}"), ..Default::default() };
        if i % 2 == 0 {
            new.status = Some(CaseStatus::Closed);
        }
        if i % 3 == 0 {
            new.assigned_user_id = Some(agent.user_id.clone());
            new.priority = Some(CasePriority::High);
        }
        if i % 5 == 0 {
            new.team_ids = vec![team.id.clone()];
            new.account_id = Some(account.id.clone());
            new.contact_id = Some(contact.id.clone());
        }
        if i == 7 {
            new.name = "100% off_sale".into();
            new.description = Some("The WiFi is down".into());
        }
        db.case(&db.admin, new).await;
    }
    let list = |filter: CaseFilter| {
        let store = db.store.clone();
        let admin = db.admin.clone();
        async move { store.list_cases(&admin, &filter).await.expect("list") }
    };
    assert_eq!(list(CaseFilter { open: Some(true), ..Default::default() }).await.total, 15);
    assert_eq!(list(CaseFilter { open: Some(false), ..Default::default() }).await.total, 15);
    assert_eq!(
        list(CaseFilter { statuses: vec![CaseStatus::Closed, CaseStatus::New], ..Default::default() }).await.total,
        30
    );
    assert_eq!(
        list(CaseFilter { assigned_user_id: Some(agent.user_id.clone()), ..Default::default() }).await.total,
        10
    );
    assert_eq!(
        list(CaseFilter { priorities: vec![CasePriority::High], open: Some(true), ..Default::default() }).await.total,
        5
    );
    assert_eq!(list(CaseFilter { team_id: Some(team.id.clone()), ..Default::default() }).await.total, 6);
    assert_eq!(list(CaseFilter { account_id: Some(account.id.clone()), ..Default::default() }).await.total, 6);
    assert_eq!(list(CaseFilter { contact_id: Some(contact.id.clone()), ..Default::default() }).await.total, 6);
    // Text search: case-insensitive over name and description, by number,
    // and wildcards in the text match literally.
    assert_eq!(list(CaseFilter { q: Some("wifi".into()), ..Default::default() }).await.items[0].number, 7);
    assert_eq!(list(CaseFilter { q: Some("%".into()), ..Default::default() }).await.total, 1);
    assert_eq!(list(CaseFilter { q: Some("_".into()), ..Default::default() }).await.total, 1);
    assert_eq!(list(CaseFilter { q: Some("#12".into()), ..Default::default() }).await.items[0].name, "Case 12");
    assert_eq!(list(CaseFilter { q: Some("'; DROP TABLE cases; --".into()), ..Default::default() }).await.total, 0);

    let first = list(CaseFilter { window: Window::new(Some(10), Some(0)), ..Default::default() }).await;
    assert_eq!(first.total, 30);
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.items[0].number, 30);
    let last = list(CaseFilter { window: Window::new(Some(10), Some(25)), ..Default::default() }).await;
    assert_eq!(last.items.iter().map(|c| c.number).collect::<Vec<_>>(), vec![5, 4, 3, 2, 1]);
    let ascending =
        list(CaseFilter { sort: Sort { field: CaseSortField::Number, descending: false }, ..Default::default() }).await;
    assert_eq!(ascending.items[0].number, 1);
    let by_priority =
        list(CaseFilter { sort: Sort { field: CaseSortField::Priority, descending: true }, ..Default::default() })
            .await;
    assert_eq!(by_priority.items[0].priority, CasePriority::High);
}

/// An agent session of an hour.
fn session_for<'a>(user_id: &'a str, token_hash: &'a str) -> docket_store::NewSession<'a> {
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    docket_store::NewSession { user_id, token_hash, csrf_token: "csrf", expires_at, portal_id: None }
}

async fn deactivated_users_lose_sessions_and_keys(db: TestDb) {
    let agent = db.agent("ann", Permissions::default_agent(), vec![]).await;
    db.store.create_session(&session_for(&agent.user_id, "session-hash")).await.expect("session");
    db.store.create_api_key(&db.admin, &agent.user_id, "ci", "dk_abc", "key-hash").await.expect("key");
    assert!(db.store.session("session-hash").await.expect("session").is_some());
    // An admin's password reset ends the user's sessions.
    db.store.create_session(&session_for(&agent.user_id, "other-hash")).await.expect("session");
    db.store
        .update_user(&db.admin, &agent.user_id, &UserPatch::default(), Some("new-hash".into()))
        .await
        .expect("reset");
    assert!(db.store.session("other-hash").await.expect("session").is_none());
    db.store.create_session(&session_for(&agent.user_id, "session-hash")).await.expect("session");
    assert!(db.store.actor_by_api_key("key-hash").await.expect("key").is_some());
    db.store
        .update_user(&db.admin, &agent.user_id, &UserPatch { is_active: Some(false), ..Default::default() }, None)
        .await
        .expect("deactivate");
    assert!(db.store.session("session-hash").await.expect("session").is_none());
    assert!(db.store.actor_by_api_key("key-hash").await.expect("key").is_none());
    assert!(!db.store.login_user("ann").await.expect("lookup").expect("exists").is_active);
}

async fn usernames_and_team_names_are_unique(db: TestDb) {
    db.agent("ann", Permissions::default_agent(), vec![]).await;
    let duplicate = db
        .store
        .create_user(
            &db.admin,
            &NewUser { username: "ann".into(), user_type: UserType::Agent, is_active: true, ..Default::default() },
            None,
        )
        .await
        .expect_err("duplicate");
    assert!(matches!(duplicate, StoreError::Invalid(ref e) if e.fields.contains_key("username")), "{duplicate:?}");
    db.store.create_team(&db.admin, &NewTeam { name: "T".into(), members: vec![] }).await.expect("team");
    assert!(db.store.create_team(&db.admin, &NewTeam { name: "T".into(), members: vec![] }).await.is_err());
    // Bootstrap runs once.
    assert!(!db.store.bootstrap("x".into()).await.expect("bootstrap"));
}

/// Nodes starting together race to bootstrap: exactly one wins, none fails.
async fn bootstrap_is_safe_to_race(url: String) {
    let store = Store::open(&url, &StoreOptions::default()).await.expect("open");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.bootstrap("hash".into()).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        if racer.await.expect("task").expect("bootstrap never fails") {
            created += 1;
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_races_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    bootstrap_is_safe_to_race(format!("sqlite://{}", dir.path().join("d.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_races_on_postgres() {
    let Ok(admin_url) = std::env::var("DOCKET_TEST_POSTGRES_URL") else {
        assert_ne!(std::env::var("DOCKET_REQUIRE_POSTGRES").as_deref(), Ok("1"), "PostgreSQL required");
        eprintln!("skipped: DOCKET_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return;
    };
    bootstrap_is_safe_to_race(fresh_postgres_database(&admin_url).await).await;
}

async fn jobs_are_leased_once_and_retried(db: TestDb) {
    use docket_store::{JobOutcome, NewJob};
    use std::time::Duration;
    for i in 0..20 {
        let job = NewJob {
            kind: "test",
            payload: serde_json::json!({ "i": i }),
            run_at: chrono::Utc::now() - chrono::Duration::seconds(1),
            idempotency_key: Some(format!("test-{i}")),
        };
        db.store.enqueue_job(&job).await.expect("enqueue");
        // The same idempotency key makes no second job.
        db.store.enqueue_job(&job).await.expect("enqueue again");
    }
    // Four workers race for the jobs: each is claimed exactly once while
    // its lease holds.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(job) = store.claim_job(&format!("w{w}"), Duration::from_secs(60)).await.expect("claim") {
                    claimed.push(job.payload["i"].as_i64().expect("i"));
                }
                claimed
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("task"));
    }
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<i64>>());

    // An expired lease lets another worker take the job over; the first
    // worker's late outcome then changes nothing.
    let job =
        NewJob { kind: "lease", payload: serde_json::json!({}), run_at: chrono::Utc::now(), idempotency_key: None };
    db.store.enqueue_job(&job).await.expect("enqueue");
    let first = db.store.claim_job("slow", Duration::from_millis(1)).await.expect("claim").expect("job");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = db.store.claim_job("fast", Duration::from_secs(60)).await.expect("claim").expect("taken over");
    assert_eq!(first.id, second.id);
    assert_eq!(second.attempts, 2);
    db.store.finish_job(&first, "slow", &JobOutcome::Permanent("late".into())).await.expect("finish");
    db.store.finish_job(&second, "fast", &JobOutcome::Retry("flaky".into())).await.expect("finish");
    let queued = db.store.list_jobs(&db.admin, Some("queued"), Window::default()).await.expect("list");
    let retried = queued.items.iter().find(|j| j.id == second.id).expect("queued again");
    assert_eq!(retried.last_error.as_deref(), Some("flaky"));
    assert!(retried.run_at > chrono::Utc::now(), "retried with back-off");
    assert!(db.store.claim_job("w", Duration::from_secs(60)).await.expect("claim").is_none(), "not due yet");

    // A job whose worker keeps dying fails after its last attempt instead
    // of running forever.
    let doomed =
        NewJob { kind: "doomed", payload: serde_json::json!({}), run_at: chrono::Utc::now(), idempotency_key: None };
    db.store.enqueue_job(&doomed).await.expect("enqueue");
    let mut doomed_id = String::new();
    for _ in 0..docket_store::DEFAULT_MAX_ATTEMPTS {
        let job = db.store.claim_job("dies", Duration::from_millis(1)).await.expect("claim").expect("job");
        assert_eq!(job.kind, "doomed");
        doomed_id = job.id;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(db.store.claim_job("w", Duration::from_secs(60)).await.expect("claim").is_none());
    let failed = db.store.list_jobs(&db.admin, Some("failed"), Window::default()).await.expect("list");
    assert!(
        failed.items.iter().any(|j| j.id == doomed_id && j.last_error.as_deref().is_some_and(|e| e.contains("lease")))
    );
    db.store.retry_job(&db.admin, &doomed_id).await.expect("retry");
    let revived = db.store.claim_job("w", Duration::from_secs(60)).await.expect("claim").expect("job");
    db.store.finish_job(&revived, "w", &JobOutcome::Done).await.expect("finish");

    // Permanent failures stop; an admin can retry them.
    let done_count = db.store.list_jobs(&db.admin, Some("running"), Window::default()).await.expect("list").total;
    assert_eq!(done_count, 20, "the raced jobs are still leased (nobody finished them)");
    let failing =
        NewJob { kind: "fail", payload: serde_json::json!({}), run_at: chrono::Utc::now(), idempotency_key: None };
    db.store.enqueue_job(&failing).await.expect("enqueue");
    let job = db.store.claim_job("w", Duration::from_secs(60)).await.expect("claim").expect("job");
    db.store.finish_job(&job, "w", &JobOutcome::Permanent("bad address".into())).await.expect("finish");
    let failed = db.store.list_jobs(&db.admin, Some("failed"), Window::default()).await.expect("list");
    assert_eq!(failed.total, 1);
    assert_eq!(failed.items[0].last_error.as_deref(), Some("bad address"));
    db.store.retry_job(&db.admin, &job.id).await.expect("retry");
    let again = db.store.claim_job("w", Duration::from_secs(60)).await.expect("claim").expect("job");
    assert_eq!((again.id, again.attempts), (job.id, 1));
}

fn rule(name: &str, hook: &str, condition: Option<&str>, script: &str) -> RuleInput {
    RuleInput {
        name: name.into(),
        hook: hook.into(),
        condition: condition.map(str::to_string),
        script: script.into(),
        enabled: true,
        ..Default::default()
    }
}

async fn runs_of(db: &TestDb, case_id: &str) -> Vec<RuleRun> {
    let filter =
        RunFilter { case_id: Some(case_id.into()), window: Window::new(Some(200), None), ..Default::default() };
    db.store.rule_runs(&db.admin, &filter).await.expect("runs").items
}

async fn rules_are_checked_when_saved(db: TestDb) {
    let store = &db.store;
    let broken = rule("broken", "case.created", None, "let x = 1;\nif ticket.priority == {");
    match store.create_rule(&db.admin, &broken).await {
        Err(StoreError::Invalid(errors)) => {
            let message = &errors.fields["script"];
            assert!(message.contains("line 2"), "{message}");
            assert!(message.contains("saved disabled"), "{message}");
        }
        other => panic!("a broken script must be refused: {other:?}"),
    }
    // A draft that does not compile yet may be kept, disabled.
    let draft = store.create_rule(&db.admin, &RuleInput { enabled: false, ..broken.clone() }).await.expect("draft");
    assert!(!draft.enabled);
    let enable = RuleInput { enabled: true, version: Some(draft.version), ..broken };
    assert!(matches!(store.update_rule(&db.admin, &draft.id, &enable).await, Err(StoreError::Invalid(_))));
    let bad_cron = RuleInput { schedule: Some("every day".into()), ..rule("cron", "schedule", None, "print(1)") };
    match store.create_rule(&db.admin, &bad_cron).await {
        Err(StoreError::Invalid(errors)) => assert!(errors.fields["schedule"].contains("cron"), "{errors}"),
        other => panic!("a bad schedule must be refused: {other:?}"),
    }
    let bad_filter = RuleInput {
        schedule: Some("0 9 * * *".into()),
        case_filter: Some(serde_json::json!({ "status": "Lost" })),
        ..rule("filter", "schedule", None, "print(1)")
    };
    assert!(matches!(store.create_rule(&db.admin, &bad_filter).await, Err(StoreError::Invalid(_))));
    let good = store.create_rule(&db.admin, &rule("good", "case.created", None, "print(1)")).await.expect("good");
    assert!(matches!(
        store.create_rule(&db.admin, &rule("good", "case.created", None, "print(2)")).await,
        Err(StoreError::Invalid(_))
    ));
    let agent = db.agent("ruleless", Permissions::default_agent(), vec![]).await;
    assert!(matches!(store.list_rules(&agent).await, Err(StoreError::Forbidden(_))));
    assert_eq!(store.list_rules(&db.admin).await.expect("list").len(), 2);
    store.delete_rule(&db.admin, &good.id).await.expect("delete");
}

async fn rules_change_cases_in_the_triggering_transaction(db: TestDb) {
    let store = &db.store;
    let keywords = r#"if ticket.name.to_lower().contains("outage") { set("priority", "Urgent") }"#;
    store.create_rule(&db.admin, &rule("keywords", "case.before_save", None, keywords)).await.expect("rule");
    let escalate = r#"internal_note(`Escalated case #${ticket.number}`)"#;
    let condition = Some(r#"ticket.priority == "Urgent""#);
    store.create_rule(&db.admin, &rule("escalate", "case.created", condition, escalate)).await.expect("rule");
    let spam = r#"reject("Cases named spam are not accepted")"#;
    store
        .create_rule(&db.admin, &rule("no spam", "case.before_save", Some(r#"ticket.name == "spam""#), spam))
        .await
        .expect("rule");

    let case = db.case(&db.admin, NewCase { name: "Mail outage".into(), ..Default::default() }).await;
    assert_eq!(case.priority, CasePriority::Urgent, "before_save rules change the case before it is written");
    let stream = store.case_stream(&db.admin, &case.id, Window::new(Some(50), None)).await.expect("stream");
    let note = stream.items.iter().find(|n| n.note_type == NoteType::Post).expect("the rule's note");
    assert_eq!(note.post.as_deref(), Some(format!("Escalated case #{}", case.number).as_str()));
    assert!(note.is_internal);
    assert_eq!(note.author_id.as_deref(), Some("system"));
    assert_eq!(note.data["rule"], "escalate");
    let runs = runs_of(&db, &case.id).await;
    let applied: BTreeSet<&str> =
        runs.iter().filter(|r| r.outcome == Outcome::Applied).map(|r| r.rule_name.as_str()).collect();
    assert_eq!(applied, BTreeSet::from(["keywords", "escalate"]), "{runs:?}");

    let before = store.list_cases(&db.admin, &CaseFilter::default()).await.expect("list").total;
    let draft = NewCase { name: "spam".into(), ..Default::default() }.validate().expect("valid");
    match store.create_case(&db.admin, draft).await {
        Err(StoreError::Rejected { rule, message }) => {
            assert_eq!(rule, "no spam");
            assert_eq!(message, "Cases named spam are not accepted");
        }
        other => panic!("the rule should reject: {other:?}"),
    }
    assert_eq!(store.list_cases(&db.admin, &CaseFilter::default()).await.expect("list").total, before);
    let rejected = store
        .rule_runs(&db.admin, &RunFilter { outcome: Some(Outcome::Rejected), ..Default::default() })
        .await
        .expect("runs");
    assert_eq!(rejected.total, 1, "the rejection is logged although nothing was saved");

    // Updates run the rules too, with the changed fields.
    let track = r#"internal_note(`status ${changes.status.before} -> ${changes.status.after}`)"#;
    store
        .create_rule(&db.admin, &rule("track", "case.updated", Some("\"status\" in changes"), track))
        .await
        .expect("rule");
    let patch = CasePatch { status: Some(CaseStatus::Pending), ..Default::default() };
    store.update_case(&db.admin, &case.id, &patch).await.expect("update");
    let stream = store.case_stream(&db.admin, &case.id, Window::new(Some(50), None)).await.expect("stream");
    let runs = runs_of(&db, &case.id).await;
    assert!(stream.items.iter().any(|n| n.post.as_deref() == Some("status New -> Pending")), "{runs:?}");
}

async fn failing_rules_are_recorded_and_skipped(db: TestDb) {
    let store = &db.store;
    store.create_rule(&db.admin, &rule("divide", "case.created", None, "let x = 1 / 0;")).await.expect("rule");
    let nobody = r#"set("priority", "Low"); assign("0123456789abcdef0123456789abcdef")"#;
    store.create_rule(&db.admin, &rule("ghost", "case.created", None, nobody)).await.expect("rule");
    store.create_rule(&db.admin, &rule("loop", "case.created", None, "loop {}")).await.expect("rule");
    store
        .create_rule(&db.admin, &rule("fine", "case.created", None, r#"set("priority", "High")"#))
        .await
        .expect("rule");
    let case = db.case(&db.admin, NewCase { name: "Still saved".into(), ..Default::default() }).await;
    assert_eq!(case.priority, CasePriority::High, "the working rule applied; the failing one rolled back");
    assert_eq!(case.assigned_user_id, None);
    let runs = runs_of(&db, &case.id).await;
    let outcome = |name: &str| runs.iter().find(|r| r.rule_name == name).map(|r| (r.outcome, r.error.clone()));
    let (divide, error) = outcome("divide").expect("logged");
    assert_eq!(divide, Outcome::Failed);
    assert!(error.expect("error").to_lowercase().contains("division by zero"));
    let (ghost, error) = outcome("ghost").expect("logged");
    assert_eq!(ghost, Outcome::Failed);
    assert!(error.expect("error").contains("assigned_user_id"), "the apply error names the field");
    let (looped, error) = outcome("loop").expect("logged");
    assert_eq!(looped, Outcome::Failed);
    assert!(error.expect("error").contains("operations"));
    assert_eq!(outcome("fine").expect("logged").0, Outcome::Applied);
}

async fn rule_loops_stop_at_the_depth_limit(db: TestDb) {
    let store = &db.store;
    let again = r#"set("description", `${ticket.description}+`)"#;
    store.create_rule(&db.admin, &rule("again", "case.updated", None, again)).await.expect("rule");
    let case = db.case(&db.admin, NewCase { name: "Loop".into(), ..Default::default() }).await;
    let patch = CasePatch { description: Some(Some("x".into())), ..Default::default() };
    let updated = store.update_case(&db.admin, &case.id, &patch).await.expect("the update is saved");
    let runs = runs_of(&db, &case.id).await;
    let stopped = runs.iter().find(|r| r.outcome == Outcome::DepthLimit).expect("the loop is stopped and logged");
    assert!(stopped.error.as_deref().unwrap_or_default().contains("levels deep"));
    let applied = runs.iter().filter(|r| r.outcome == Outcome::Applied).count();
    assert_eq!(applied, 6, "depths 0 to 5 run: {runs:?}");
    assert_eq!(updated.description.as_deref(), Some("x++++++"));
}

async fn round_robin_assigns_evenly_under_concurrency(db: TestDb) {
    round_robin_under_concurrency(db, "case.created", 1000).await;
}

/// Assigning before the case is saved: the team lock (PostgreSQL) must
/// make each assignment see the one before, although the case is not
/// inserted yet when the next transaction reads.
async fn round_robin_before_save_assigns_evenly_under_concurrency(db: TestDb) {
    round_robin_under_concurrency(db, "case.before_save", 400).await;
}

async fn round_robin_under_concurrency(db: TestDb, hook: &str, cases: usize) {
    let mut members = Vec::new();
    for name in ["rr1", "rr2", "rr3", "rr4"] {
        let agent = db.agent(name, Permissions::default_agent(), vec![]).await;
        members.push(TeamMember { user_id: agent.user_id, position: None });
    }
    let team = db.store.create_team(&db.admin, &NewTeam { name: "Support".into(), members: members.clone() }).await;
    team.expect("team");
    let script = r#"assign_by("round-robin", "Support")"#;
    db.store.create_rule(&db.admin, &rule("spread", hook, None, script)).await.expect("rule");
    let workers = 16;
    let per_worker = cases / workers;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = db.store.clone();
            let admin = db.admin.clone();
            tokio::spawn(async move {
                for i in 0..per_worker {
                    let draft =
                        NewCase { name: format!("rr {w}-{i}"), ..Default::default() }.validate().expect("valid");
                    store.create_case(&admin, draft).await.expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let total = workers * per_worker;
    for member in &members {
        let filter = CaseFilter { assigned_user_id: Some(member.user_id.clone()), ..Default::default() };
        let assigned = db.store.list_cases(&db.admin, &filter).await.expect("list").total;
        assert_eq!(assigned, (total / 4) as i64, "round-robin gives each agent a quarter");
    }
    // In number order the assignees cycle through the team.
    let filter = CaseFilter {
        sort: Sort { field: CaseSortField::Number, descending: false },
        window: Window::new(Some(8), None),
        ..Default::default()
    };
    let first = db.store.list_cases(&db.admin, &filter).await.expect("list").items;
    let order: Vec<_> = first.iter().map(|c| c.assigned_user_id.clone().expect("assigned")).collect();
    assert_eq!(order[..4], order[4..8]);
    // The note says why: an Assign note when a created rule assigned, the
    // Create note when the case was assigned before it was saved.
    let stream = db.store.case_stream(&db.admin, &first[1].id, Window::new(Some(10), None)).await.expect("stream");
    let kind = if hook == "case.created" { NoteType::Assign } else { NoteType::Create };
    let note = stream.items.iter().find(|n| n.note_type == kind).expect("the note");
    let reason = note.data["assignment"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("round-robin: next after rr"), "{reason}");
    if hook == "case.created" {
        assert_eq!(note.data["rule"], "spread");
    }
}

/// Round-robin sees what happened since the node last assigned: a case
/// another node (sharing the database) assigned, and a case reassigned by
/// hand. Guards against a node caching the team's last assignment.
async fn round_robin_sees_assignments_made_elsewhere(db: TestDb) {
    let mut ids = Vec::new();
    for name in ["rr1", "rr2", "rr3"] {
        ids.push(db.agent(name, Permissions::default_agent(), vec![]).await.user_id);
    }
    ids.sort();
    let members = ids.iter().map(|id| TeamMember { user_id: id.clone(), position: None }).collect();
    db.store.create_team(&db.admin, &NewTeam { name: "Support".into(), members }).await.expect("team");
    let script = r#"assign_by("round-robin", "Support")"#;
    let spread = rule("spread", "case.before_save", Some("event.creating"), script);
    db.store.create_rule(&db.admin, &spread).await.expect("rule");
    let other_node = Store::open(&db.url, &StoreOptions::default()).await.expect("a second node");
    let named = |name: &str| NewCase { name: name.into(), ..Default::default() };
    let first = db.case(&db.admin, named("first")).await;
    assert_eq!(first.assigned_user_id.as_ref(), Some(&ids[0]));
    let draft = named("second, on the other node").validate().expect("valid");
    let second = other_node.create_case(&db.admin, draft).await.expect("create on the other node");
    assert_eq!(second.assigned_user_id.as_ref(), Some(&ids[1]));
    let third = db.case(&db.admin, named("third")).await;
    assert_eq!(third.assigned_user_id.as_ref(), Some(&ids[2]), "the first node sees the second node's case");
    // By hand, the latest case goes to the first member: next is the second.
    let patch =
        CasePatch { assigned_user_id: Some(Some(ids[0].clone())), version: Some(third.version), ..Default::default() };
    db.store.update_case(&db.admin, &third.id, &patch).await.expect("reassign");
    let fourth = db.case(&db.admin, named("fourth")).await;
    assert_eq!(fourth.assigned_user_id.as_ref(), Some(&ids[1]), "a reassignment by hand counts");
    let fifth = db.case(&db.admin, named("fifth")).await;
    assert_eq!(fifth.assigned_user_id.as_ref(), Some(&ids[2]));
    other_node.close().await;
}

async fn scheduled_rules_run_once_per_tick(db: TestDb) {
    let store = &db.store;
    let close = RuleInput {
        schedule: Some("* * * * * *".into()),
        case_filter: Some(serde_json::json!({ "status": "Pending" })),
        ..rule("close pending", "schedule", None, r#"set("status", "Closed"); post_note("Closed for you.")"#)
    };
    let close = store.create_rule(&db.admin, &close).await.expect("rule");
    let monthly = RuleInput {
        schedule: Some("* * * * * *".into()),
        ..rule("monthly", "schedule", None, r#"create_case(#{ name: "Maintenance check", priority: "Low" })"#)
    };
    let monthly = store.create_rule(&db.admin, &monthly).await.expect("rule");
    let mut pending = Vec::new();
    for i in 0..3 {
        let new = NewCase { name: format!("waiting {i}"), status: Some(CaseStatus::Pending), ..Default::default() };
        pending.push(db.case(&db.admin, new).await);
    }
    let other = db.case(&db.admin, NewCase { name: "new".into(), ..Default::default() }).await;
    let mut enqueued = 0;
    for _ in 0..30 {
        enqueued += store.schedule_due_rules().await.expect("schedule");
        if enqueued >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(enqueued, 2, "one tick of each rule");
    let mut ran = BTreeSet::new();
    while let Some(job) = store.claim_job("test", std::time::Duration::from_secs(60)).await.expect("claim") {
        if job.kind != docket_store::RULE_SCHEDULE_JOB {
            store.finish_job(&job, "test", &docket_store::JobOutcome::Done).await.expect("finish");
            continue;
        }
        let rule_id = job.payload["rule_id"].as_str().expect("rule id").to_string();
        let result = store.run_scheduled_rule(&rule_id).await.expect("run");
        if rule_id == close.id {
            assert_eq!(result.cases, 3);
        }
        ran.insert(rule_id);
        store.finish_job(&job, "test", &docket_store::JobOutcome::Done).await.expect("finish");
    }
    assert_eq!(ran, BTreeSet::from([close.id.clone(), monthly.id.clone()]));
    for case in &pending {
        assert_eq!(store.get_case(&db.admin, &case.id).await.expect("case").status, CaseStatus::Closed);
    }
    assert_eq!(store.get_case(&db.admin, &other.id).await.expect("case").status, CaseStatus::New);
    let made = CaseFilter { q: Some("Maintenance check".into()), ..Default::default() };
    let made = store.list_cases(&db.admin, &made).await.expect("list").items;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].created_by_id.as_deref(), Some("system"));
    let stream = store.case_stream(&db.admin, &made[0].id, Window::new(Some(10), None)).await.expect("stream");
    let create = stream.items.iter().find(|n| n.note_type == NoteType::Create).expect("Create note");
    assert_eq!(create.data["rule"], "monthly");
}

async fn rule_failures_never_block_the_change(db: TestDb) {
    let store = &db.store;
    let ghost = r#"assign("0123456789abcdef0123456789abcdef"); set("priority", "High")"#;
    store.create_rule(&db.admin, &rule("ghost before save", "case.before_save", None, ghost)).await.expect("rule");
    let nul_note = r#"post_note("a\x00b")"#;
    store.create_rule(&db.admin, &rule("nul note", "case.created", None, nul_note)).await.expect("rule");
    let bad_read = r#"print(count_cases(#{ text: "x\x00" }))"#;
    store.create_rule(&db.admin, &rule("bad read", "case.created", None, bad_read)).await.expect("rule");
    let after = r#"internal_note("still running")"#;
    store
        .create_rule(&db.admin, &RuleInput { position: 9, ..rule("after", "case.created", None, after) })
        .await
        .expect("rule");

    let case = db.case(&db.admin, NewCase { name: "Saved anyway".into(), ..Default::default() }).await;
    assert_eq!(case.assigned_user_id, None);
    assert_eq!(case.priority, CasePriority::Normal, "the failing before_save rule changed nothing");
    let runs = runs_of(&db, &case.id).await;
    let outcome = |name: &str| runs.iter().find(|r| r.rule_name == name).map(|r| r.outcome);
    assert_eq!(outcome("ghost before save"), Some(Outcome::Failed), "{runs:?}");
    assert_eq!(outcome("nul note"), Some(Outcome::Applied));
    assert_eq!(outcome("after"), Some(Outcome::Applied), "rules after a failed read still run: {runs:?}");
    let stream = store.case_stream(&db.admin, &case.id, Window::new(Some(20), None)).await.expect("stream");
    let posts: Vec<_> = stream.items.iter().filter_map(|n| n.post.clone()).collect();
    assert!(posts.contains(&"ab".to_string()), "{posts:?}");
    assert!(posts.contains(&"still running".to_string()), "{posts:?}");
}

async fn capped_scheduled_rules_reach_every_case_in_turn(db: TestDb) {
    let store = &db.store;
    let mut numbers = Vec::new();
    for i in 0..5 {
        numbers.push(db.case(&db.admin, NewCase { name: format!("sweep {i}"), ..Default::default() }).await.number);
    }
    let sweep = RuleInput {
        schedule: Some("0 0 6 * * *".into()),
        case_filter: Some(serde_json::json!({ "status": "New" })),
        run_cap: Some(2),
        ..rule("sweep", "schedule", None, "print(ticket.number)")
    };
    let sweep = store.create_rule(&db.admin, &sweep).await.expect("rule");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let run = store.run_scheduled_rule(&sweep.id).await.expect("run");
        let filter =
            RunFilter { rule_id: Some(sweep.id.clone()), window: Window::new(Some(100), None), ..Default::default() };
        let total = store.rule_runs(&db.admin, &filter).await.expect("runs").total;
        seen.push((run.cases, run.capped, total));
    }
    assert_eq!(
        seen,
        vec![(2, true, 2), (2, true, 4), (1, false, 5), (2, true, 7)],
        "2, 2, the last one, then over again"
    );
}

async fn manual_rules_and_dry_runs(db: TestDb) {
    let store = &db.store;
    let close = rule("close it", "manual", Some(r#"ticket.status != "Closed""#), r#"set("status", "Closed")"#);
    let close = store.create_rule(&db.admin, &close).await.expect("rule");
    let case = db.case(&db.admin, NewCase { name: "Manual".into(), ..Default::default() }).await;
    let shown = store.manual_rules(&db.admin, &case.id).await.expect("manual rules");
    assert_eq!(shown.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["close it"]);

    let dry = store.test_rule(&db.admin, &close, Some(case.number)).await.expect("dry run");
    assert_eq!(dry.outcome, Outcome::DryRun);
    assert_eq!(dry.condition_held, Some(true));
    assert_eq!(dry.actions, vec![RuleAction::Set { field: "status".into(), value: "Closed".into() }]);
    assert_eq!(store.get_case(&db.admin, &case.id).await.expect("case").status, CaseStatus::New, "nothing changed");
    assert!(runs_of(&db, &case.id).await.is_empty(), "dry runs are not logged");

    let run = store.run_manual_rule(&db.admin, &case.id, &close.id).await.expect("run");
    assert_eq!(run.outcome, Outcome::Applied);
    assert_eq!(store.get_case(&db.admin, &case.id).await.expect("case").status, CaseStatus::Closed);
    assert!(store.manual_rules(&db.admin, &case.id).await.expect("manual rules").is_empty());
    assert!(matches!(store.run_manual_rule(&db.admin, &case.id, &close.id).await, Err(StoreError::Invalid(_))));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// Counts rows of a table with a connection of the test's own.
async fn count_rows(db: &TestDb, table: &str) -> i64 {
    use sqlx::Row as _;
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    if db.url.starts_with("sqlite:") {
        let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
        sqlx::query(&sql).fetch_one(&mut connection).await.expect("count").get("n")
    } else {
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
        sqlx::query(&sql).fetch_one(&mut connection).await.expect("count").get("n")
    }
}

/// A change queues its runs in its own transaction; a background task
/// moves them into the run log, and reading the log moves them at once.
async fn rule_runs_are_queued_then_moved_into_the_log(db: TestDb) {
    let store = &db.store;
    store
        .create_rule(&db.admin, &rule("raise", "case.before_save", None, r#"set("priority", "High")"#))
        .await
        .expect("rule");
    store
        .create_rule(&db.admin, &rule("remark", "case.created", None, r#"internal_note("seen")"#))
        .await
        .expect("rule");
    // Read at once: the runs are in the log, whether or not moved yet.
    let first = db.case(&db.admin, NewCase { name: "Read at once".into(), ..Default::default() }).await;
    assert_eq!(runs_of(&db, &first.id).await.len(), 2);
    assert_eq!(count_rows(&db, "rule_run_queue").await, 0, "reading the log moved the queue");
    // Left alone: the background task moves them within a second or so.
    for i in 0..20 {
        db.case(&db.admin, NewCase { name: format!("Left alone {i}"), ..Default::default() }).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count_rows(&db, "rule_run_queue").await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count_rows(&db, "rule_run_queue").await, 0, "the background task moved the queue");
    assert_eq!(count_rows(&db, "rule_runs").await, 42);
    // A queued run of a case deleted before it was moved goes with it.
    let doomed = db.case(&db.admin, NewCase { name: "Deleted".into(), ..Default::default() }).await;
    store.delete_case(&db.admin, &doomed.id).await.expect("delete");
    let filter = RunFilter { window: Window::new(Some(200), None), ..Default::default() };
    assert_eq!(store.rule_runs(&db.admin, &filter).await.expect("runs").total, 42);
}

/// A notification that slipped past the follow rules (written here by
/// hand) still does not show a portal user a case they cannot reach, or an
/// internal note.
async fn portal_notifications_show_only_what_they_may_read(db: TestDb) {
    let store = &db.store;
    let contact = store
        .create_contact(&db.admin, &NewContact { last_name: "Customer".into(), ..Default::default() })
        .await
        .expect("contact");
    let user = store
        .create_user(
            &db.admin,
            &NewUser {
                username: "cust".into(),
                user_type: UserType::Portal,
                is_active: true,
                contact_id: Some(contact.id.clone()),
                ..Default::default()
            },
            Some("hash".into()),
        )
        .await
        .expect("portal user");
    let portal = store.actor(&user.id).await.expect("actor").expect("active");
    let theirs = db
        .case(&db.admin, NewCase { name: "Theirs".into(), contact_id: Some(contact.id.clone()), ..Default::default() })
        .await;
    let foreign = db.case(&db.admin, NewCase { name: "Someone else's".into(), ..Default::default() }).await;
    let public = store
        .create_post(&db.admin, &theirs.id, &NewPost { post: "Public".into(), ..Default::default() })
        .await
        .expect("post");
    let internal = store
        .create_post(
            &db.admin,
            &theirs.id,
            &NewPost { post: "Internal".into(), is_internal: true, ..Default::default() },
        )
        .await
        .expect("post");
    let elsewhere = store
        .create_post(&db.admin, &foreign.id, &NewPost { post: "Elsewhere".into(), ..Default::default() })
        .await
        .expect("post");
    // Write the notifications by hand, as if the rules had slipped.
    let mut sql = String::from("DELETE FROM notifications WHERE user_id = '");
    sql.push_str(&user.id);
    sql.push_str("'; ");
    for (case_id, note_id) in [(&theirs.id, &public.id), (&theirs.id, &internal.id), (&foreign.id, &elsewhere.id)] {
        let id = docket_domain::ids::new_id();
        sql.push_str(&format!(
            "INSERT INTO notifications (id, user_id, case_id, note_id, kind, is_highlighted, is_read, created_at) \
             VALUES ('{id}', '{}', '{case_id}', '{note_id}', 'note', FALSE, FALSE, '2026-11-28T10:00:00Z'); ",
            user.id
        ));
    }
    execute_raw(&db, &sql).await;
    let page = store.notifications(&portal, false, Window::default()).await.expect("notifications");
    let notes: Vec<&str> = page.items.iter().map(|n| n.note_id.as_str()).collect();
    assert_eq!(notes, vec![public.id.as_str()], "{page:?}");
    assert_eq!((page.total, page.unread), (1, 1));
}

/// Runs statements with a connection of the test's own.
async fn execute_raw(db: &TestDb, sql: &str) {
    if db.url.starts_with("sqlite:") {
        let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut connection).await.expect("execute");
    } else {
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut connection).await.expect("execute");
    }
}

/// Invitation and reset tokens: one live token per purpose, used once,
/// dead once expired or once the user is deactivated.
async fn one_time_links_expire_are_replaced_and_work_once(db: TestDb) {
    use docket_domain::portal::PortalInput;
    use docket_domain::user::PortalInvitation;
    use docket_store::TokenPurpose;
    let store = &db.store;
    let contact = store
        .create_contact(
            &db.admin,
            &NewContact { last_name: "Baker".into(), emails: vec!["bo@bakery.test".into()], ..Default::default() },
        )
        .await
        .expect("contact");
    let portal = PortalInput {
        name: "Help".into(),
        slug: "help".into(),
        is_active: true,
        is_default: true,
        role_ids: vec![],
        branding: Default::default(),
        web_form: Default::default(),
        version: None,
    };
    store.create_portal(&db.admin, portal).await.expect("portal");
    let user = store.invite_contact(&db.admin, &contact.id, &PortalInvitation::default()).await.expect("invite");
    assert_eq!(count_rows(&db, "user_tokens").await, 0, "the job makes the token, not the invitation");

    let issued = store.issue_user_token(&user.id, TokenPurpose::Invitation, None, "h1").await.expect("issue");
    let issued = issued.expect("an email to send");
    assert_eq!((issued.email.as_str(), issued.portal_slug.as_deref()), ("bo@bakery.test", Some("help")));
    assert!(store.user_token("h1").await.expect("token").is_some());
    store.issue_user_token(&user.id, TokenPurpose::Invitation, None, "h2").await.expect("issue");
    assert!(store.user_token("h1").await.expect("token").is_none(), "replaced");
    assert_eq!(store.user_token("h2").await.expect("token").expect("live").purpose, TokenPurpose::Invitation);
    assert_eq!(store.set_password_with_token("h2", "hash-1").await.expect("set"), "bo@bakery.test");
    assert!(matches!(store.set_password_with_token("h2", "hash-2").await, Err(StoreError::NotFound)));
    assert_eq!(
        store.login_user("bo@bakery.test").await.expect("user").expect("exists").password_hash.as_deref(),
        Some("hash-1")
    );

    // Expired: nothing.
    store.issue_user_token(&user.id, TokenPurpose::PasswordReset, None, "h3").await.expect("issue");
    execute_raw(&db, "UPDATE user_tokens SET expires_at = created_at").await;
    assert!(store.user_token("h3").await.expect("token").is_none());
    assert!(matches!(store.set_password_with_token("h3", "hash-3").await, Err(StoreError::NotFound)));

    // Deactivated users get no link, and theirs stop working.
    store.issue_user_token(&user.id, TokenPurpose::PasswordReset, None, "h4").await.expect("issue");
    store
        .update_user(&db.admin, &user.id, &UserPatch { is_active: Some(false), ..Default::default() }, None)
        .await
        .expect("deactivate");
    assert!(store.user_token("h4").await.expect("token").is_none());
    assert!(store.issue_user_token(&user.id, TokenPurpose::PasswordReset, None, "h5").await.expect("issue").is_none());
    // Reactivated, the old link stays dead; so does one sent before an
    // address change.
    store
        .update_user(&db.admin, &user.id, &UserPatch { is_active: Some(true), ..Default::default() }, None)
        .await
        .expect("reactivate");
    assert!(store.user_token("h4").await.expect("token").is_none());
    store.issue_user_token(&user.id, TokenPurpose::PasswordReset, None, "h6").await.expect("issue");
    let new_address = UserPatch { email: Some(Some("bo@elsewhere.test".into())), ..Default::default() };
    store.update_user(&db.admin, &user.id, &new_address, None).await.expect("new address");
    assert!(store.user_token("h6").await.expect("token").is_none());
}

/// The hourly job archives published articles whose expiration date has
/// passed, once.
async fn expired_articles_are_archived(db: TestDb) {
    use docket_domain::kb::{ArticleInput, ArticleStatus};
    let store = &db.store;
    let input = |name: &str, expires: Option<&str>| ArticleInput {
        name: name.into(),
        status: ArticleStatus::Published,
        expiration_date: expires.map(|day| day.parse().expect("date")),
        ..Default::default()
    };
    let old = store.create_article(&db.admin, input("Old", Some("2026-11-27"))).await.expect("article");
    let last_day = store.create_article(&db.admin, input("Last day", Some("2026-11-28"))).await.expect("article");
    let lasting = store.create_article(&db.admin, input("Lasting", None)).await.expect("article");
    let today = "2026-11-28".parse().expect("date");
    assert_eq!(store.archive_expired_articles(today).await.expect("archive"), 1);
    assert_eq!(store.archive_expired_articles(today).await.expect("archive"), 0, "archived once");
    for (article, status) in
        [(old, ArticleStatus::Archived), (last_day, ArticleStatus::Published), (lasting, ArticleStatus::Published)]
    {
        assert_eq!(store.get_article(&db.admin, &article.id).await.expect("get").status, status, "{}", article.name);
    }
}

/// The names of the cases `q` finds, sorted.
async fn found(db: &TestDb, q: &str) -> Vec<String> {
    let filter = CaseFilter { q: Some(q.into()), window: Window::new(Some(50), None), ..Default::default() };
    let mut names: Vec<String> =
        db.store.list_cases(&db.admin, &filter).await.expect("list").items.into_iter().map(|c| c.name).collect();
    names.sort();
    names
}

/// Text search gives the same answers right after the cases are created
/// (on SQLite they are scanned, unless the background task was quick) and
/// once they are indexed (both backends read trigram indexes), and the
/// index follows renames and deletions.
async fn text_search_reads_the_index_and_the_cases_not_yet_in_it(db: TestDb) {
    let store = &db.store;
    let toner = db
        .case(
            &db.admin,
            NewCase {
                name: "Toner cartridge empty".into(),
                description: Some("The copier on floor three wants magenta.".into()),
                ..Default::default()
            },
        )
        .await;
    db.case(&db.admin, NewCase { name: "Überweisung fehlgeschlagen".into(), ..Default::default() }).await;
    for indexed in [false, true] {
        if indexed {
            store.index_new_cases().await.expect("index");
        }
        assert_eq!(found(&db, "cartridge").await, ["Toner cartridge empty"], "indexed: {indexed}");
        assert_eq!(found(&db, "MAGENTA").await, ["Toner cartridge empty"], "indexed: {indexed}");
        assert_eq!(found(&db, "ner cart").await, ["Toner cartridge empty"], "indexed: {indexed}");
        assert_eq!(found(&db, "floor four").await, Vec::<String>::new(), "indexed: {indexed}");
        assert_eq!(found(&db, "weisung").await, ["Überweisung fehlgeschlagen"], "indexed: {indexed}");
    }
    // Once indexed, case folding covers all of Unicode on both backends.
    assert_eq!(found(&db, "ÜBERWEISUNG").await, ["Überweisung fehlgeschlagen"]);
    assert_eq!(store.index_new_cases().await.expect("index"), 0, "nothing left to index");

    // A rename reaches the index at once; so does a deletion.
    let patch = CasePatch { name: Some("Drum unit noisy".into()), version: Some(toner.version), ..Default::default() };
    store.update_case(&db.admin, &toner.id, &patch).await.expect("rename");
    assert_eq!(found(&db, "cartridge").await, Vec::<String>::new());
    assert_eq!(found(&db, "drum unit").await, ["Drum unit noisy"]);
    assert_eq!(found(&db, "magenta").await, ["Drum unit noisy"]);
    store.delete_case(&db.admin, &toner.id).await.expect("delete");
    assert_eq!(found(&db, "drum unit").await, Vec::<String>::new());
    // A case newer than the index is found by the scan, then by the index.
    db.case(&db.admin, NewCase { name: "Drum unit again".into(), ..Default::default() }).await;
    assert_eq!(found(&db, "drum unit").await, ["Drum unit again"]);
    store.index_new_cases().await.expect("index");
    assert_eq!(found(&db, "drum unit").await, ["Drum unit again"]);
}

conformance!(
    text_search_reads_the_index_and_the_cases_not_yet_in_it,
    portal_notifications_show_only_what_they_may_read,
    expired_articles_are_archived,
    one_time_links_expire_are_replaced_and_work_once,
    rule_runs_are_queued_then_moved_into_the_log,
    records_round_trip,
    case_numbers_stay_unique_under_concurrent_creation,
    stale_versions_conflict,
    updates_write_audit_notes,
    access_levels_limit_reads_and_writes,
    portal_users_see_only_their_contacts_public_cases,
    filters_sorting_and_pagination,
    deactivated_users_lose_sessions_and_keys,
    usernames_and_team_names_are_unique,
    jobs_are_leased_once_and_retried,
    rules_are_checked_when_saved,
    rules_change_cases_in_the_triggering_transaction,
    failing_rules_are_recorded_and_skipped,
    rule_loops_stop_at_the_depth_limit,
    round_robin_assigns_evenly_under_concurrency,
    round_robin_before_save_assigns_evenly_under_concurrency,
    round_robin_sees_assignments_made_elsewhere,
    scheduled_rules_run_once_per_tick,
    manual_rules_and_dry_runs,
    rule_failures_never_block_the_change,
    capped_scheduled_rules_reach_every_case_in_turn,
);

/// SQLite only: commits append to the write-ahead log and a background
/// checkpointer copies it into the database file, so the file alone (what
/// a copy without its `-wal` holds) soon has every committed case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_is_copied_into_the_database_file_in_the_background() {
    let db = TestDb::sqlite().await;
    let dir = db._dir.as_ref().expect("a folder").path().to_path_buf();
    for i in 0..300 {
        db.case(&db.admin, NewCase { name: format!("logged {i}"), ..Default::default() }).await;
    }
    let wal_before = std::fs::metadata(dir.join("nested/docket.db-wal")).expect("the log exists").len();
    assert!(wal_before > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let copies = tempfile::tempdir().expect("tempdir");
    let mut attempt = 0;
    let total = loop {
        attempt += 1;
        // The file alone: no log beside it. A copy taken while a checkpoint
        // writes may be torn or behind; the next one is not.
        let copy = copies.path().join(format!("copy{attempt}.db"));
        std::fs::copy(dir.join("nested/docket.db"), &copy).expect("copy");
        let opened = Store::open(&format!("sqlite://{}", copy.display()), &StoreOptions::default()).await;
        let total = match opened {
            Ok(store) => {
                let page = store.list_cases(&db.admin, &CaseFilter::default()).await;
                store.close().await;
                page.map(|page| page.total).unwrap_or(0)
            }
            Err(_) => 0,
        };
        if total == 300 || std::time::Instant::now() > deadline {
            break total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(total, 300, "the database file alone should hold every case");
}
