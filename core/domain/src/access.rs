//! Access decisions: who may create, read, edit or delete which records.
//!
//! Roles give, per record kind ([`Scope`]) and [`Action`], a [`Level`]:
//! `all` records, those of the user's `team`s (and their own), their `own`
//! (assigned to or created by them), or `no`. A user's roles merge by taking
//! the widest level per cell. Admins bypass roles. Portal users never hold
//! agent roles: their portal roles decide (see [`crate::portal`]), and
//! internal records are invisible to them at every level.
//!
//! A record the actor may not read is reported as not found, never as
//! forbidden, so that its existence does not leak.

use serde::{Deserialize, Serialize};

use crate::portal::{PortalAccess, PortalAction, PortalLevel};
use crate::user::UserType;

/// How far a permission reaches. Ordered from narrowest to widest, so that
/// merging roles is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    No,
    Own,
    Team,
    All,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::All, Level::Team, Level::Own, Level::No];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::No => "no",
            Level::Own => "own",
            Level::Team => "team",
            Level::All => "all",
        }
    }
}

/// What an actor wants to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Read,
    Edit,
    Delete,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Create, Action::Read, Action::Edit, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Edit => "edit",
            Action::Delete => "delete",
        }
    }
}

/// The kinds of records roles speak about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Case,
    Account,
    Contact,
    User,
    Team,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Case, Scope::Account, Scope::Contact, Scope::User, Scope::Team];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Case => "case",
            Scope::Account => "account",
            Scope::Contact => "contact",
            Scope::User => "user",
            Scope::Team => "team",
        }
    }
}

/// The four levels a role sets for one record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionLevels {
    pub create: Level,
    pub read: Level,
    pub edit: Level,
    pub delete: Level,
}

impl ActionLevels {
    pub fn get(&self, action: Action) -> Level {
        match action {
            Action::Create => self.create,
            Action::Read => self.read,
            Action::Edit => self.edit,
            Action::Delete => self.delete,
        }
    }

    pub fn set(&mut self, action: Action, level: Level) {
        match action {
            Action::Create => self.create = level,
            Action::Read => self.read = level,
            Action::Edit => self.edit = level,
            Action::Delete => self.delete = level,
        }
    }

    fn merge(&self, other: &ActionLevels) -> ActionLevels {
        ActionLevels {
            create: self.create.max(other.create),
            read: self.read.max(other.read),
            edit: self.edit.max(other.edit),
            delete: self.delete.max(other.delete),
        }
    }

    /// The same level for every action.
    pub fn uniform(level: Level) -> ActionLevels {
        ActionLevels { create: level, read: level, edit: level, delete: level }
    }
}

/// A role's permissions: levels per record kind. Kinds a role leaves out
/// get `no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    pub case: ActionLevels,
    pub account: ActionLevels,
    pub contact: ActionLevels,
    pub user: ActionLevels,
    pub team: ActionLevels,
}

impl Permissions {
    pub fn levels(&self, scope: Scope) -> &ActionLevels {
        match scope {
            Scope::Case => &self.case,
            Scope::Account => &self.account,
            Scope::Contact => &self.contact,
            Scope::User => &self.user,
            Scope::Team => &self.team,
        }
    }

    pub fn levels_mut(&mut self, scope: Scope) -> &mut ActionLevels {
        match scope {
            Scope::Case => &mut self.case,
            Scope::Account => &mut self.account,
            Scope::Contact => &mut self.contact,
            Scope::User => &mut self.user,
            Scope::Team => &mut self.team,
        }
    }

    /// The widest level of each cell across both.
    pub fn merge(&self, other: &Permissions) -> Permissions {
        Permissions {
            case: self.case.merge(&other.case),
            account: self.account.merge(&other.account),
            contact: self.contact.merge(&other.contact),
            user: self.user.merge(&other.user),
            team: self.team.merge(&other.team),
        }
    }

    /// The permissions of the "Agent" role seeded on a new installation:
    /// work on every case, account and contact, delete none, see colleagues.
    pub fn default_agent() -> Permissions {
        let work = ActionLevels { create: Level::All, read: Level::All, edit: Level::All, delete: Level::No };
        let read_only = ActionLevels { read: Level::All, ..ActionLevels::default() };
        Permissions { case: work, account: work, contact: work, user: read_only, team: read_only }
    }
}

/// The facts about a record that access decisions look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership<'a> {
    pub assigned_user_id: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub team_ids: &'a [String],
    /// Contacts linked to the record (cases): portal users see their own.
    pub contact_ids: &'a [String],
    /// The record's account (cases), for portal users' `account` level.
    pub account_id: Option<&'a str>,
    /// Internal records are invisible to portal users.
    pub is_internal: bool,
}

/// The outcome of an access check on one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The actor may read the record but not do this to it: 403.
    Forbidden,
    /// The actor may not even read it: 404, as if it did not exist.
    Hidden,
}

/// Which records of a kind a list shows the actor; the store turns this
/// into a query condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    All,
    /// Records assigned to or created by the user, or linked to one of the
    /// teams.
    OwnOrTeams {
        user_id: String,
        team_ids: Vec<String>,
    },
    /// Records assigned to or created by the user.
    Own {
        user_id: String,
    },
    /// Portal users: non-internal records their level reaches (never
    /// `no`: that is [`ListScope::Nothing`]).
    Portal {
        level: PortalLevel,
        user_id: String,
        contact_id: Option<String>,
        account_ids: Vec<String>,
    },
    Nothing,
}

/// The user rules act as: what a rule does is authored by it (and names
/// the rule). It is an inactive admin that cannot log in.
pub const SYSTEM_USER_ID: &str = "system";

/// The authenticated user a request or command acts for, with everything
/// access decisions need, loaded once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub user_type: UserType,
    pub team_ids: Vec<String>,
    pub contact_id: Option<String>,
    /// The merge of the user's roles (ignored for admins and portal users).
    pub permissions: Permissions,
    /// Portal users: their portal permissions where they are, and their
    /// contact's accounts (empty for everyone else).
    pub portal: PortalAccess,
}

impl Actor {
    /// The actor of rule actions (see [`SYSTEM_USER_ID`]).
    pub fn system() -> Actor {
        Actor {
            user_id: SYSTEM_USER_ID.to_string(),
            username: "system".to_string(),
            user_type: UserType::Admin,
            team_ids: Vec::new(),
            contact_id: None,
            permissions: Permissions::default(),
            portal: PortalAccess::default(),
        }
    }

    /// Whether this is the rules' actor rather than a person.
    pub fn is_system(&self) -> bool {
        self.user_id == SYSTEM_USER_ID
    }

    pub fn is_admin(&self) -> bool {
        self.user_type == UserType::Admin
    }

    pub fn is_portal(&self) -> bool {
        self.user_type == UserType::Portal
    }

    /// Whether the actor may write internal posts and see internal records.
    pub fn is_staff(&self) -> bool {
        !self.is_portal()
    }

    /// The level the actor holds for an action on a kind of record.
    pub fn level(&self, scope: Scope, action: Action) -> Level {
        match self.user_type {
            UserType::Admin => Level::All,
            // A portal user's reach is not a `Level`: this says only
            // whether they may do it to some record.
            UserType::Portal => match self.portal_level(scope, action) {
                PortalLevel::No => Level::No,
                _ => Level::Own,
            },
            UserType::Agent | UserType::Api => self.permissions.levels(scope).get(action),
        }
    }

    /// Whether the actor may create records of this kind at all.
    pub fn may_create(&self, scope: Scope) -> bool {
        self.level(scope, Action::Create) != Level::No
    }

    /// Whether `action` is allowed on a record with these owner facts.
    pub fn allows(&self, scope: Scope, action: Action, record: &Ownership<'_>) -> bool {
        if self.is_portal() {
            return self.portal_allows(scope, action, record);
        }
        match self.level(scope, action) {
            Level::All => true,
            Level::Team => self.owns(record) || record.team_ids.iter().any(|t| self.team_ids.contains(t)),
            Level::Own => self.owns(record),
            Level::No => false,
        }
    }

    /// Read first: an unreadable record is hidden; a readable one the
    /// action is not allowed on is forbidden.
    pub fn decide(&self, scope: Scope, action: Action, record: &Ownership<'_>) -> Decision {
        if !self.allows(scope, Action::Read, record) {
            Decision::Hidden
        } else if action == Action::Read || self.allows(scope, action, record) {
            Decision::Allow
        } else {
            Decision::Forbidden
        }
    }

    /// Which records of a kind the actor's lists show.
    pub fn list_scope(&self, scope: Scope) -> ListScope {
        if self.is_portal() {
            return match self.portal_level(scope, Action::Read) {
                PortalLevel::No => ListScope::Nothing,
                level => ListScope::Portal {
                    level,
                    user_id: self.user_id.clone(),
                    contact_id: self.contact_id.clone(),
                    account_ids: self.portal.account_ids.clone(),
                },
            };
        }
        match self.level(scope, Action::Read) {
            Level::All => ListScope::All,
            Level::Team => ListScope::OwnOrTeams { user_id: self.user_id.clone(), team_ids: self.team_ids.clone() },
            Level::Own => ListScope::Own { user_id: self.user_id.clone() },
            Level::No => ListScope::Nothing,
        }
    }

    fn owns(&self, record: &Ownership<'_>) -> bool {
        record.assigned_user_id == Some(self.user_id.as_str()) || record.created_by == Some(self.user_id.as_str())
    }

    /// Whether the actor may read a case's stream and post on it: staff who
    /// may read the case; portal users whose `stream` level (and `read`
    /// level) reach it.
    pub fn decide_stream(&self, record: &Ownership<'_>) -> Decision {
        match self.decide(Scope::Case, Action::Read, record) {
            Decision::Allow if self.is_portal() => {
                if self.portal_reaches(self.portal.permissions.case.get(PortalAction::Stream), record) {
                    Decision::Allow
                } else {
                    Decision::Forbidden
                }
            }
            decision => decision,
        }
    }

    /// Whether the user may follow a case, and so get its notifications,
    /// stream emails and live notes: whoever may use its stream.
    pub fn may_follow(&self, record: &Ownership<'_>) -> bool {
        self.decide_stream(record) == Decision::Allow
    }

    /// A portal user's level for an action: their roles speak only of
    /// cases (articles have their own check); deleting is never theirs.
    fn portal_level(&self, scope: Scope, action: Action) -> PortalLevel {
        let cases = &self.portal.permissions.case;
        match (scope, action) {
            (Scope::Case, Action::Create) => cases.get(PortalAction::Create),
            (Scope::Case, Action::Read) => cases.get(PortalAction::Read),
            (Scope::Case, Action::Edit) => cases.get(PortalAction::Edit),
            _ => PortalLevel::No,
        }
    }

    fn portal_allows(&self, scope: Scope, action: Action, record: &Ownership<'_>) -> bool {
        self.portal_reaches(self.portal_level(scope, action), record)
    }

    /// Whether a portal level reaches a record; internal ones never.
    fn portal_reaches(&self, level: PortalLevel, record: &Ownership<'_>) -> bool {
        if record.is_internal {
            return false;
        }
        let own = || record.created_by == Some(self.user_id.as_str());
        let contact = || self.contact_id.as_ref().is_some_and(|c| record.contact_ids.contains(c));
        let account = || record.account_id.is_some_and(|a| self.portal.account_ids.iter().any(|mine| mine == a));
        match level {
            PortalLevel::No => false,
            PortalLevel::Own => own(),
            PortalLevel::Contact => own() || contact(),
            PortalLevel::Account => own() || contact() || account(),
            PortalLevel::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(case_read: Level, case_edit: Level) -> Actor {
        let mut permissions = Permissions::default();
        permissions.case.read = case_read;
        permissions.case.edit = case_edit;
        Actor {
            user_id: "u1".into(),
            username: "ann".into(),
            user_type: UserType::Agent,
            team_ids: vec!["t1".into()],
            contact_id: None,
            permissions,
            portal: PortalAccess::default(),
        }
    }

    #[test]
    fn levels_reach_as_documented() {
        let teams_t1 = vec!["t1".to_string()];
        let teams_t2 = vec!["t2".to_string()];
        let mine = Ownership { assigned_user_id: Some("u1"), ..Default::default() };
        let created = Ownership { created_by: Some("u1"), ..Default::default() };
        let my_team = Ownership { assigned_user_id: Some("u9"), team_ids: &teams_t1, ..Default::default() };
        let other = Ownership { assigned_user_id: Some("u9"), team_ids: &teams_t2, ..Default::default() };

        let own = agent(Level::Own, Level::No);
        assert!(own.allows(Scope::Case, Action::Read, &mine));
        assert!(own.allows(Scope::Case, Action::Read, &created));
        assert!(!own.allows(Scope::Case, Action::Read, &my_team));

        let team = agent(Level::Team, Level::No);
        assert!(team.allows(Scope::Case, Action::Read, &my_team));
        assert!(team.allows(Scope::Case, Action::Read, &mine));
        assert!(!team.allows(Scope::Case, Action::Read, &other));

        let all = agent(Level::All, Level::Own);
        assert!(all.allows(Scope::Case, Action::Read, &other));
        assert_eq!(all.decide(Scope::Case, Action::Edit, &other), Decision::Forbidden);
        assert_eq!(all.decide(Scope::Case, Action::Edit, &mine), Decision::Allow);

        let none = agent(Level::No, Level::All);
        assert_eq!(none.decide(Scope::Case, Action::Edit, &mine), Decision::Hidden);
        assert_eq!(none.list_scope(Scope::Case), ListScope::Nothing);
    }

    #[test]
    fn admins_bypass_roles() {
        let mut admin = agent(Level::No, Level::No);
        admin.user_type = UserType::Admin;
        assert!(admin.allows(Scope::Case, Action::Delete, &Ownership::default()));
        assert_eq!(admin.list_scope(Scope::Team), ListScope::All);
    }

    fn portal_user(permissions: crate::portal::PortalPermissions) -> Actor {
        Actor {
            user_id: "p1".into(),
            username: "cust".into(),
            user_type: UserType::Portal,
            team_ids: vec![],
            contact_id: Some("c1".into()),
            // Agent roles mean nothing to a portal user.
            permissions: Permissions::default_agent(),
            portal: PortalAccess { permissions, account_ids: vec!["a1".into()], portal_id: None },
        }
    }

    #[test]
    fn portal_users_without_roles_see_only_their_contacts_public_cases() {
        let portal = portal_user(crate::portal::PortalPermissions::fallback());
        let contacts = vec!["c1".to_string()];
        let theirs = Ownership { contact_ids: &contacts, ..Default::default() };
        let internal = Ownership { contact_ids: &contacts, is_internal: true, ..Default::default() };
        let others = Ownership { created_by: Some("u1"), ..Default::default() };
        assert!(portal.allows(Scope::Case, Action::Read, &theirs));
        assert!(!portal.allows(Scope::Case, Action::Edit, &theirs));
        assert!(!portal.allows(Scope::Case, Action::Read, &internal));
        assert!(!portal.allows(Scope::Case, Action::Read, &others));
        assert!(!portal.allows(Scope::Account, Action::Read, &Ownership::default()));
        assert_eq!(portal.decide_stream(&theirs), Decision::Allow);
        assert!(!portal.is_staff());
    }

    /// Every portal level against the five kinds of case the issue names:
    /// created by the user, of their contact, of their account, of another
    /// account, and internal (of their contact).
    #[test]
    fn portal_levels_reach_exactly_their_cases() {
        use crate::portal::{PortalCaseLevels, PortalPermissions};
        let (mine, other_contacts) = (vec!["c1".to_string()], vec!["c9".to_string()]);
        let created = Ownership { created_by: Some("p1"), contact_ids: &other_contacts, ..Default::default() };
        let contact = Ownership { contact_ids: &mine, account_id: Some("a9"), ..Default::default() };
        let account = Ownership { contact_ids: &other_contacts, account_id: Some("a1"), ..Default::default() };
        let foreign = Ownership { contact_ids: &other_contacts, account_id: Some("a9"), ..Default::default() };
        let internal =
            Ownership { created_by: Some("p1"), contact_ids: &mine, is_internal: true, ..Default::default() };
        let cases = [created, contact, account, foreign, internal];
        let expected = [
            (PortalLevel::No, [false, false, false, false, false]),
            (PortalLevel::Own, [true, false, false, false, false]),
            (PortalLevel::Contact, [true, true, false, false, false]),
            (PortalLevel::Account, [true, true, true, false, false]),
            (PortalLevel::All, [true, true, true, true, false]),
        ];
        for (level, reach) in expected {
            let levels = PortalCaseLevels { read: level, edit: level, stream: level, create: PortalLevel::No };
            let user = portal_user(PortalPermissions { case: levels, ..Default::default() });
            for (case, reaches) in cases.iter().zip(reach) {
                assert_eq!(user.allows(Scope::Case, Action::Read, case), reaches, "{level:?} read {case:?}");
                assert_eq!(user.allows(Scope::Case, Action::Edit, case), reaches, "{level:?} edit {case:?}");
                let stream = if reaches { Decision::Allow } else { Decision::Hidden };
                assert_eq!(user.decide_stream(case), stream, "{level:?} stream {case:?}");
                assert!(!user.allows(Scope::Case, Action::Delete, case));
            }
            let scope = user.list_scope(Scope::Case);
            assert_eq!(scope == ListScope::Nothing, level == PortalLevel::No, "{scope:?}");
            assert!(!user.may_create(Scope::Case));
        }
        // Reading without the stream: the case shows, its stream does not.
        let levels = PortalCaseLevels { read: PortalLevel::All, create: PortalLevel::Own, ..Default::default() };
        let reader = portal_user(PortalPermissions { case: levels, ..Default::default() });
        assert_eq!(reader.decide_stream(&foreign), Decision::Forbidden);
        assert_eq!(reader.decide(Scope::Case, Action::Edit, &foreign), Decision::Forbidden);
        assert!(reader.may_create(Scope::Case));
    }

    #[test]
    fn merging_roles_takes_the_widest_level() {
        let mut a = Permissions::default();
        a.case.read = Level::Own;
        a.case.edit = Level::All;
        let mut b = Permissions::default();
        b.case.read = Level::Team;
        let merged = a.merge(&b);
        assert_eq!(merged.case.read, Level::Team);
        assert_eq!(merged.case.edit, Level::All);
        assert_eq!(merged.account.read, Level::No);
    }
}
