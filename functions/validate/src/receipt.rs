//! What intake answers: the typed bodies of its responses, and the stored form kept for an
//! idempotent replay.

use oms_domain::OrderRecord;
use oms_edge::StoredResponse;
use serde::{Deserialize, Serialize};
use spin_sdk::http::Response;

/// The 202 body of an order taken in. It depends on the order id only, so every attempt at
/// the same intent — a replay, a retry after a crash, a redelivery — answers the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The order id (derived from the intent).
    pub id: String,
    /// The status the order was accepted in: `validated` (`cancelled` for a marketplace
    /// order whose payment was already voided).
    pub status: String,
    /// Where to read it.
    pub links: Links,
    /// The customer's access token for this order (`Authorization: Bearer <token>` on its
    /// routes); derived from the order id, so every attempt answers the same one.
    pub access_token: String,
}

/// Links of an accepted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The order.
    #[serde(rename = "self")]
    pub order: String,
    /// Its timeline.
    pub events: String,
}

impl Accepted {
    /// The receipt of `record`, with the order's access token
    /// (`oms_edge::order_token::issue`).
    pub fn of(record: &OrderRecord, access_token: String) -> Accepted {
        let id = record.order().id().to_string();
        Accepted {
            access_token,
            links: Links {
                order: format!("/v1/orders/{id}"),
                events: format!("/v1/orders/{id}/events"),
            },
            status: "validated".into(),
            id,
        }
    }

    /// As stored for replay (202, JSON).
    pub fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: 202,
            content_type: "application/json".into(),
            body: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// The 200 body of a marketplace redelivery: the order the delivery already made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// The existing order.
    pub id: String,
    /// Always `duplicate`.
    pub status: String,
    /// The channel's id for it.
    pub external_id: String,
    /// The customer's access token for the order (as in [`Accepted`]).
    pub access_token: String,
}

/// The HTTP response for a stored (possibly replayed) result; a 202 links to the order.
pub fn respond(r: &StoredResponse) -> Response {
    let mut b = Response::builder();
    b.status(r.status)
        .header("content-type", r.content_type.as_str())
        .header("cache-control", "no-store");
    if r.status == 202 {
        if let Ok(accepted) = serde_json::from_str::<Accepted>(&r.body) {
            b.header("location", accepted.links.order);
        }
    }
    b.body(r.body.clone()).build()
}
