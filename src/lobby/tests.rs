use super::*;

fn owner(session: u32) -> Owner {
    Owner {
        session,
        client_id: format!("owner{session}"),
        client_name: "Living room".into(),
        app_id: 77,
        app_title: "Kart".into(),
    }
}

fn guest(session: u32, client: &str, role: GuestRole) -> Guest {
    Guest {
        session,
        client_id: client.into(),
        client_name: client.into(),
        role,
    }
}

fn with_pin(pin: &str) -> LobbySettings {
    LobbySettings {
        pin: Some(pin.into()),
        ..LobbySettings::default()
    }
}

#[test]
fn an_open_lobby_is_an_app_entry_named_after_app_and_owner() {
    let mut lobbies = Lobbies::default();
    let lobby = lobbies
        .open(owner(5), LobbySettings::default(), &[])
        .unwrap();
    assert_eq!(lobby.number, 1);
    assert_eq!(lobby.app_id, LOBBY_APP_BASE + 1);
    assert_eq!(lobby.join_title(), "Join: Kart (Living room)");
    assert_eq!(
        lobbies.by_app_id(LOBBY_APP_BASE + 1).unwrap().owner.session,
        5
    );
    assert!(lobbies.by_app_id(77).is_none());
}

#[test]
fn opening_again_changes_settings_and_a_new_pin_locks_everyone_out_again() {
    let mut lobbies = Lobbies::default();
    lobbies.open(owner(5), with_pin("1234"), &[]).unwrap();
    let now = Instant::now();
    lobbies.unlock(1, "g", "1234", now).unwrap();
    assert!(lobbies.get(1).unwrap().unlocked_for("g"));
    let again = lobbies.open(owner(5), with_pin("9999"), &[]).unwrap();
    assert_eq!(again.number, 1, "the same lobby, not a second one");
    assert!(!again.unlocked_for("g"));
    assert_eq!(lobbies.all().len(), 1);
}

#[test]
fn join_ids_step_over_configured_app_ids() {
    let mut lobbies = Lobbies::default();
    let taken = [LOBBY_APP_BASE + 1, LOBBY_APP_BASE + 2];
    let lobby = lobbies
        .open(owner(5), LobbySettings::default(), &taken)
        .unwrap();
    assert_eq!(lobby.app_id, LOBBY_APP_BASE + 3);
}

#[test]
fn numbers_are_not_reused_while_open_and_wrap_without_zero() {
    let mut lobbies = Lobbies {
        last_number: u32::MAX - LOBBY_APP_BASE - 2,
        ..Lobbies::default()
    };
    let first = lobbies
        .open(owner(1), LobbySettings::default(), &[])
        .unwrap()
        .number;
    let second = lobbies
        .open(owner(2), LobbySettings::default(), &[])
        .unwrap()
        .number;
    let third = lobbies
        .open(owner(3), LobbySettings::default(), &[])
        .unwrap()
        .number;
    assert_eq!(first, u32::MAX - LOBBY_APP_BASE - 1);
    assert_eq!(second, 1, "after the last number comes 1, never 0");
    assert_eq!(third, 2);
    for lobby in lobbies.all() {
        assert!(lobby.app_id >= LOBBY_APP_BASE, "{}", lobby.app_id);
    }
}

#[test]
fn settings_are_checked() {
    assert_eq!(with_pin("12a4").validate(), Err(LobbyError::BadPin));
    assert_eq!(with_pin("123").validate(), Err(LobbyError::BadPin));
    assert_eq!(with_pin("123456789").validate(), Err(LobbyError::BadPin));
    assert_eq!(with_pin("12345678").validate(), Ok(()));
    let none = LobbySettings {
        max_guests: 0,
        ..LobbySettings::default()
    };
    assert_eq!(none.validate(), Err(LobbyError::BadMaxGuests(0)));
    let too_many = LobbySettings {
        max_guests: MAX_GUESTS + 1,
        ..LobbySettings::default()
    };
    assert!(Lobbies::default().open(owner(1), too_many, &[]).is_err());
}

#[test]
fn a_pin_lobby_admits_only_clients_that_entered_the_pin() {
    let mut lobbies = Lobbies::default();
    lobbies.open(owner(5), with_pin("4711"), &[]).unwrap();
    assert_eq!(lobbies.admit(1, "g", true), Err(LobbyError::PinNeeded(1)));
    let now = Instant::now();
    assert!(matches!(
        lobbies.unlock(1, "g", "0000", now),
        Err(LobbyError::WrongPin { left: 4, .. })
    ));
    assert_eq!(lobbies.admit(1, "g", true), Err(LobbyError::PinNeeded(1)));
    lobbies.unlock(1, "g", "4711", now).unwrap();
    assert_eq!(lobbies.admit(1, "g", true), Ok(GuestRole::Player));
    assert_eq!(
        lobbies.admit(1, "other", true),
        Err(LobbyError::PinNeeded(1))
    );
}

#[test]
fn wrong_pins_lock_a_client_out_for_a_while_then_it_may_try_again() {
    let mut lobbies = Lobbies::default();
    lobbies.open(owner(5), with_pin("4711"), &[]).unwrap();
    let start = Instant::now();
    for _ in 0..MAX_PIN_FAILURES {
        assert!(matches!(
            lobbies.unlock(1, "g", "0000", start),
            Err(LobbyError::WrongPin { .. })
        ));
    }
    // Even the right PIN is refused during the lockout.
    assert!(matches!(
        lobbies.unlock(1, "g", "4711", start + Duration::from_secs(1)),
        Err(LobbyError::LockedOut { seconds: 59, .. })
    ));
    // Another client is not locked out.
    lobbies.unlock(1, "h", "4711", start).unwrap();
    lobbies
        .unlock(1, "g", "4711", start + PIN_LOCKOUT)
        .expect("the lockout ends");
}

#[test]
fn pin_attempts_remembered_are_bounded() {
    let mut lobbies = Lobbies::default();
    lobbies.open(owner(5), with_pin("4711"), &[]).unwrap();
    let now = Instant::now();
    for n in 0..(MAX_TRACKED_CLIENTS + 50) {
        let _ = lobbies.unlock(
            1,
            &format!("c{n}"),
            "0000",
            now + Duration::from_millis(n as u64),
        );
    }
    assert_eq!(lobbies.get(1).unwrap().failures.len(), MAX_TRACKED_CLIENTS);
}

#[test]
fn roles_limits_and_the_owner() {
    let mut lobbies = Lobbies::default();
    let settings = LobbySettings {
        max_guests: 2,
        spectators: false,
        ..LobbySettings::default()
    };
    lobbies.open(owner(5), settings, &[]).unwrap();
    assert_eq!(
        lobbies.admit(1, "owner5", true),
        Err(LobbyError::OwnLobby(1))
    );
    assert_eq!(
        lobbies.admit(1, "s", false),
        Err(LobbyError::NoSpectators(1))
    );
    assert!(lobbies.add_guest(1, guest(10, "a", GuestRole::Player)));
    assert!(lobbies.add_guest(1, guest(11, "b", GuestRole::Player)));
    assert_eq!(
        lobbies.admit(1, "c", true),
        Err(LobbyError::Full { lobby: 1, max: 2 })
    );
    let (number, left) = lobbies.remove_guest(10).unwrap();
    assert_eq!((number, left.client_id.as_str()), (1, "a"));
    assert_eq!(lobbies.admit(1, "c", true), Ok(GuestRole::Player));
    assert_eq!(lobbies.of_guest(11).unwrap().1.client_id, "b");
    assert!(lobbies.remove_guest(10).is_none());
}

#[test]
fn a_spectator_client_joins_as_spectator_where_spectators_are_admitted() {
    let mut lobbies = Lobbies::default();
    lobbies
        .open(owner(5), LobbySettings::default(), &[])
        .unwrap();
    assert_eq!(lobbies.admit(1, "s", false), Ok(GuestRole::Spectator));
}

#[test]
fn closing_hands_back_the_guests_and_forgets_the_lobby() {
    let mut lobbies = Lobbies::default();
    lobbies
        .open(owner(5), LobbySettings::default(), &[])
        .unwrap();
    lobbies.add_guest(1, guest(10, "a", GuestRole::Player));
    let closed = lobbies.close(1).unwrap();
    assert_eq!(closed.guests.len(), 1);
    assert!(lobbies.get(1).is_none());
    assert!(!lobbies.add_guest(1, guest(11, "b", GuestRole::Player)));
    assert!(lobbies.close(1).is_none());
}

#[test]
fn lobbies_are_bounded() {
    let mut lobbies = Lobbies::default();
    for n in 0..MAX_LOBBIES {
        lobbies
            .open(owner(n as u32 + 1), LobbySettings::default(), &[])
            .unwrap();
    }
    assert_eq!(
        lobbies
            .open(owner(9999), LobbySettings::default(), &[])
            .err(),
        Some(LobbyError::TooManyLobbies)
    );
}
