//! RFC 9457 problem documents (`oms_edge::Problem`, which lives in a Wasm-only crate, so its
//! schema is mirrored here) and the error responses every component shares.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// A URI naming the problem type: `https://oms.dev/problems/<slug>`.
    #[schema(rename = "type", example = "https://oms.dev/problems/validation")]
    kind: String,
    /// Short summary of the problem type.
    title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// This occurrence.
    detail: String,
    /// The fields at fault, for validation and header problems.
    #[schema(rename = "invalid-params")]
    invalid_params: Option<Vec<InvalidParam>>,
}

/// One offending field of a problem.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InvalidParam {
    /// JSON Pointer (RFC 6901) into the body, or a header or path parameter name.
    name: String,
    /// Machine-readable code (`missing`, `invalid_format`, `out_of_range`, …).
    code: String,
    /// Why.
    reason: String,
}

/// A response whose body is a problem, with `headers` (name, description).
fn problem(description: &str, headers: &[(&str, &str)]) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    for (name, what) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(*what))
                .build(),
        );
    }
    response.build()
}

/// Declares a shared problem response (`components.responses.<Name>`).
macro_rules! problem_response {
    ($(#[$doc:meta])* $name:ident, $description:literal $(, $header:literal = $what:literal)*) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (
                    stringify!($name),
                    RefOr::T(problem($description, &[$(($header, $what)),*])),
                )
            }
        }
    };
}

problem_response!(
    /// 400.
    BadRequest,
    "Malformed request: a body that is not JSON, a malformed header or path parameter (the problem names it)"
);
problem_response!(
    /// 401.
    Unauthorized,
    "No credential, or one that is not valid (the problem names `Authorization`); nothing changed",
    "WWW-Authenticate" = "`Bearer`"
);
problem_response!(
    /// 403.
    Forbidden,
    "A valid credential of the wrong role, order or location (the problem names `Authorization`); nothing changed"
);
problem_response!(
    /// 404.
    NotFound,
    "No such resource"
);
problem_response!(
    /// 405.
    MethodNotAllowed,
    "The path does not take this method; `Allow` lists the methods it takes",
    "Allow" = "the methods the path takes, e.g. `GET, HEAD`"
);
problem_response!(
    /// 409.
    Conflict,
    "Conflicts with the current state (the problem says why)"
);
problem_response!(
    /// 410.
    Gone,
    "What the request needs is no longer stored (the problem says what)"
);
problem_response!(
    /// 422.
    Unprocessable,
    "Invalid request: `invalid-params` lists every field at fault; nothing changed"
);
problem_response!(
    /// 503.
    Unavailable,
    "Busy (too many concurrent updates) or the store did not answer; retry the same request"
);

/// 304: the `If-None-Match` ETag still matches; no body.
pub struct NotModified;

impl<'r> ToResponse<'r> for NotModified {
    fn response() -> (&'r str, RefOr<Response>) {
        let etag = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("the current strong ETag"))
            .build();
        (
            "NotModified",
            RefOr::T(
                ResponseBuilder::new()
                    .description("Not modified: the ETag in `If-None-Match` is current")
                    .header("ETag", etag)
                    .build(),
            ),
        )
    }
}
