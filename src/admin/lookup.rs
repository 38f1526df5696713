//! Finding the one paired client an admin request names (by name or ID prefix), or the admin
//! API's refusal: shared by `/unpair` and `PATCH /clients/{id}`.

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::state::clients::{ClientStore, Lookup, short_id};

/// The ID of the one client named `name_or_id` or whose ID starts with it; otherwise the
/// admin API's answer.
pub(super) fn find_client(
    clients: &ClientStore,
    name_or_id: &str,
) -> Result<String, (StatusCode, Value)> {
    match clients.find(name_or_id) {
        Lookup::One(client) => Ok(client.id.clone()),
        Lookup::None => Err((
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no paired client named or with ID `{name_or_id}`") }),
        )),
        Lookup::Ambiguous(matches) => {
            let names: Vec<_> = matches
                .iter()
                .map(|c| format!("{} ({})", c.name, short_id(&c.id)))
                .collect();
            Err((
                StatusCode::CONFLICT,
                json!({ "error": format!("`{name_or_id}` matches several clients: {}; use a longer ID", names.join(", ")) }),
            ))
        }
    }
}
