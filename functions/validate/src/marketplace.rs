pub fn intake(
    _req: &spin_sdk::http::Request,
) -> Result<spin_sdk::http::Response, oms_edge::FunctionError> {
    Err(oms_edge::Problem::new(
        501,
        "not-implemented",
        "Not implemented",
        "marketplace intake",
    )
    .into())
}
