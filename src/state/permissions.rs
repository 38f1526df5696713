//! What a paired client may do: its role (`admin`, `player`, `spectator`) and the apps it may
//! use, as Sunshine's and Apollo's per-client permissions do. Stored with the client in
//! `clients.json` (see [`super::clients::PairedClient`]); decided here, in one place, for the
//! HTTPS `/applist`, `/launch` and `/resume` (on `hati serve` and `hati gateway` alike), the
//! play page and its WebSocket, and later the lobbies (issue 20).
//!
//! It lives beside the client store rather than in `pairing/` because it is data about a paired
//! client that outlives the pairing exchange, changed later through the admin API; pairing only
//! picks the first role (`[pairing] default_role`). The checks are pure: they take the
//! configured apps (for the titles a refusal names, through [`CatalogueApp`], so that this
//! module needs nothing of `config`, which names [`Role`]) and touch no state.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The most app IDs one client's list may hold (a bound on what the admin API stores).
pub const MAX_APPS: usize = 1024;

/// A paired client's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The owner or an admin: launches any app it is allowed; will open lobbies and kick
    /// guests. What every client could do before roles existed, so files without a role load
    /// with it.
    #[default]
    Admin,
    /// Launches the apps it is allowed and joins lobbies as a player.
    Player,
    /// Launches nothing; will join lobbies only to watch.
    Spectator,
}

impl Role {
    /// Every role, in the order the docs and errors list them.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Player, Role::Spectator];

    /// The role's name in config files, the admin API and `clients.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Player => "player",
            Role::Spectator => "spectator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.chars().take(32).collect()))
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown role `{0}`: expected one of `admin`, `player`, `spectator`")]
pub struct UnknownRole(pub String);

/// An app as the checks see it: its ID (as `/applist` shows it) and title (for refusals).
/// `config::AppConfig` is one.
pub trait CatalogueApp {
    /// The app's ID.
    fn id(&self) -> u32;
    /// The app's title.
    fn title(&self) -> &str;
}

/// A client's role and the apps it may use, as stored in its `clients.json` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// What it may do.
    #[serde(default)]
    pub role: Role,
    /// The IDs (as `/applist` shows them) of the apps it may use; `None`: every app.
    #[serde(default)]
    pub apps: Option<Vec<u32>>,
}

/// Why a client may not do what it asked; the text is what Moonlight, the play page and the
/// log show.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Denied {
    /// A spectator asked to launch an app.
    #[error("client '{client}' is a spectator: it may watch lobbies but not launch apps")]
    Spectator {
        /// The client's name.
        client: String,
    },
    /// A spectator asked to join a lobby as a player.
    #[error("client '{client}' is a spectator: it may join lobbies only to watch, not to play")]
    NotPlayer {
        /// The client's name.
        client: String,
    },
    /// The client is not (or no longer) paired.
    #[error("client '{client}' is not paired with this host (or was unpaired): pair it again")]
    NotPaired {
        /// The client's short ID.
        client: String,
    },
    /// The app is not in the client's list.
    #[error("client '{client}' may not use app '{app}' (allowed: {})", allowed_text(.allowed))]
    App {
        /// The client's name.
        client: String,
        /// The app's title (or `ID n` when it is not configured).
        app: String,
        /// The titles of the configured apps it may use.
        allowed: Vec<String>,
    },
}

fn allowed_text(allowed: &[String]) -> String {
    if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed.join(", ")
    }
}

impl Permissions {
    /// Every app, as `role`.
    pub fn all_apps(role: Role) -> Self {
        Self { role, apps: None }
    }

    /// Whether the app list lets the client use app `app_id` (the role aside).
    pub fn allows_app(&self, app_id: u32) -> bool {
        self.apps.as_ref().is_none_or(|ids| ids.contains(&app_id))
    }

    /// Whether `client` (its name, for the refusal) may launch app `app_id` of `catalogue`
    /// (the configured apps).
    pub fn may_launch(
        &self,
        client: &str,
        app_id: u32,
        catalogue: &[impl CatalogueApp],
    ) -> Result<(), Denied> {
        if self.role == Role::Spectator {
            return Err(Denied::Spectator {
                client: client.to_owned(),
            });
        }
        self.check_app(client, app_id, catalogue)
    }

    /// Whether `client` may join a lobby of app `app_id`, as a player (`as_player`) or to
    /// watch. A spectator may only watch; every role is held to its app list.
    pub fn may_join(
        &self,
        client: &str,
        app_id: u32,
        as_player: bool,
        catalogue: &[impl CatalogueApp],
    ) -> Result<(), Denied> {
        if as_player && self.role == Role::Spectator {
            return Err(Denied::NotPlayer {
                client: client.to_owned(),
            });
        }
        self.check_app(client, app_id, catalogue)
    }

    fn check_app(
        &self,
        client: &str,
        app_id: u32,
        catalogue: &[impl CatalogueApp],
    ) -> Result<(), Denied> {
        if self.allows_app(app_id) {
            return Ok(());
        }
        let app = catalogue
            .iter()
            .find(|app| app.id() == app_id)
            .map_or_else(|| format!("ID {app_id}"), |app| app.title().to_owned());
        let allowed = catalogue
            .iter()
            .filter(|app| self.allows_app(app.id()))
            .map(|app| app.title().to_owned())
            .collect();
        Err(Denied::App {
            client: client.to_owned(),
            app,
            allowed,
        })
    }
}

/// The apps a client with `permissions` is offered in `/applist` and on the play page: those
/// it may launch (none for a spectator). The lobbies will extend this with their "Join:"
/// entries for clients allowed to join.
pub fn visible_apps<'a, A: CatalogueApp>(
    permissions: &Permissions,
    catalogue: &'a [A],
) -> Vec<&'a A> {
    catalogue
        .iter()
        .filter(|app| permissions.may_launch("", app.id(), catalogue).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, Config};

    fn catalogue() -> Vec<AppConfig> {
        Config::from_toml(
            "[[apps]]\ntitle = \"Desktop\"\n[[apps]]\ntitle = \"Steam\"\n[[apps]]\ntitle = \"Chess\"\n",
            "test",
            None,
        )
        .unwrap()
        .apps
    }

    fn id(apps: &[AppConfig], title: &str) -> u32 {
        apps.iter().find(|a| a.title == title).unwrap().id()
    }

    fn titles(apps: Vec<&AppConfig>) -> Vec<&str> {
        apps.into_iter().map(|a| a.title.as_str()).collect()
    }

    #[test]
    fn an_admin_with_every_app_may_do_anything() {
        let apps = catalogue();
        let admin = Permissions::default();
        assert_eq!(admin.role, Role::Admin);
        for app in &apps {
            assert_eq!(admin.may_launch("tv", app.id(), &apps), Ok(()));
            assert_eq!(admin.may_join("tv", app.id(), true, &apps), Ok(()));
        }
        assert_eq!(
            titles(visible_apps(&admin, &apps)),
            ["Desktop", "Steam", "Chess"]
        );
    }

    #[test]
    fn a_player_is_held_to_its_apps_and_told_which_it_has() {
        let apps = catalogue();
        let player = Permissions {
            role: Role::Player,
            apps: Some(vec![id(&apps, "Steam"), id(&apps, "Chess")]),
        };
        assert_eq!(
            player.may_launch("phone", id(&apps, "Steam"), &apps),
            Ok(())
        );
        assert_eq!(
            player.may_join("phone", id(&apps, "Chess"), true, &apps),
            Ok(())
        );
        let denied = player
            .may_launch("phone", id(&apps, "Desktop"), &apps)
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "client 'phone' may not use app 'Desktop' (allowed: Steam, Chess)"
        );
        assert!(matches!(
            player.may_join("phone", id(&apps, "Desktop"), false, &apps),
            Err(Denied::App { .. })
        ));
        assert_eq!(titles(visible_apps(&player, &apps)), ["Steam", "Chess"]);
    }

    #[test]
    fn an_app_nobody_configured_is_named_by_id_and_an_empty_list_allows_none() {
        let apps = catalogue();
        let nothing = Permissions {
            role: Role::Admin,
            apps: Some(Vec::new()),
        };
        assert_eq!(
            nothing.may_launch("tv", 7, &apps).unwrap_err().to_string(),
            "client 'tv' may not use app 'ID 7' (allowed: none)"
        );
        assert!(visible_apps(&nothing, &apps).is_empty());
    }

    #[test]
    fn a_spectator_launches_nothing_and_joins_only_to_watch() {
        let apps = catalogue();
        let spectator = Permissions::all_apps(Role::Spectator);
        let desktop = id(&apps, "Desktop");
        assert_eq!(
            spectator.may_launch("kid", desktop, &apps),
            Err(Denied::Spectator {
                client: "kid".into()
            })
        );
        assert_eq!(
            spectator
                .may_launch("kid", desktop, &apps)
                .unwrap_err()
                .to_string(),
            "client 'kid' is a spectator: it may watch lobbies but not launch apps"
        );
        assert_eq!(spectator.may_join("kid", desktop, false, &apps), Ok(()));
        let denied = spectator.may_join("kid", desktop, true, &apps).unwrap_err();
        assert_eq!(
            denied,
            Denied::NotPlayer {
                client: "kid".into()
            }
        );
        assert!(denied.to_string().contains("only to watch"), "{denied}");
        assert!(visible_apps(&spectator, &apps).is_empty());

        let limited = Permissions {
            role: Role::Spectator,
            apps: Some(vec![desktop]),
        };
        assert!(matches!(
            limited.may_join("kid", id(&apps, "Steam"), false, &apps),
            Err(Denied::App { .. })
        ));
    }

    #[test]
    fn roles_parse_and_print_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        let error = "plyer".parse::<Role>().unwrap_err().to_string();
        assert!(
            error.contains("plyer") && error.contains("`admin`, `player`, `spectator`"),
            "{error}"
        );
    }

    #[test]
    fn permissions_round_trip_and_default_when_absent() {
        let stored = Permissions {
            role: Role::Player,
            apps: Some(vec![1, 2]),
        };
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(json, r#"{"role":"player","apps":[1,2]}"#);
        assert_eq!(serde_json::from_str::<Permissions>(&json).unwrap(), stored);
        assert_eq!(
            serde_json::from_str::<Permissions>("{}").unwrap(),
            Permissions::all_apps(Role::Admin)
        );
    }
}
