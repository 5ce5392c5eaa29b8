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
use docket_domain::note::NoteType;
use docket_domain::team::{NewTeam, TeamMember};
use docket_domain::user::{NewRole, NewUser, UserPatch, UserType};
use docket_store::{Store, StoreError, StoreOptions};

struct TestDb {
    store: Store,
    admin: Actor,
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
        TestDb { store, admin, _dir: dir }
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

async fn deactivated_users_lose_sessions_and_keys(db: TestDb) {
    let agent = db.agent("ann", Permissions::default_agent(), vec![]).await;
    db.store
        .create_session(&agent.user_id, "session-hash", "csrf", chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("session");
    db.store.create_api_key(&db.admin, &agent.user_id, "ci", "dk_abc", "key-hash").await.expect("key");
    assert!(db.store.session("session-hash").await.expect("session").is_some());
    // An admin's password reset ends the user's sessions.
    db.store
        .create_session(&agent.user_id, "other-hash", "csrf", chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("session");
    db.store
        .update_user(&db.admin, &agent.user_id, &UserPatch::default(), Some("new-hash".into()))
        .await
        .expect("reset");
    assert!(db.store.session("other-hash").await.expect("session").is_none());
    db.store
        .create_session(&agent.user_id, "session-hash", "csrf", chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("session");
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

conformance!(
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
);
